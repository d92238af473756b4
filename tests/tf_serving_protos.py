"""TF Serving's ``BatchingParameters`` and ``MonitoringConfig`` messages, for the config tests.

``tensorflow-serving-api`` ships neither (its ``tensorflow_serving.config`` has the model server's
config, not these), so they are declared here with protobuf's descriptor API, field by field as
TF Serving's ``servables/tensorflow/session_bundle_config.proto`` and
``config/monitoring_config.proto`` declare them: ``google.protobuf.text_format`` then parses a
config file as TF Serving does, refusing unknown fields and wrongly typed values.
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto
_WRAPPERS = "google/protobuf/wrappers.proto"


def _field(message, name, number, type_, label=_F.LABEL_OPTIONAL, type_name=None):
    field = message.field.add(name=name, number=number, type=type_, label=label)
    if type_name:
        field.type_name = type_name


def _pool():
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)

    batching = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3", dependency=[_WRAPPERS])
    params = batching.message_type.add(name="BatchingParameters")
    int64 = ".google.protobuf.Int64Value"
    for number, name in enumerate(["max_batch_size", "batch_timeout_micros",
                                   "max_enqueued_batches", "num_batch_threads"], start=1):
        _field(params, name, number, _F.TYPE_MESSAGE, type_name=int64)
    _field(params, "thread_pool_name", 5, _F.TYPE_MESSAGE,
           type_name=".google.protobuf.StringValue")
    _field(params, "allowed_batch_sizes", 6, _F.TYPE_INT64, label=_F.LABEL_REPEATED)
    _field(params, "pad_variable_length_inputs", 7, _F.TYPE_BOOL)
    pool.Add(batching)

    monitoring = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto",
        package="tensorflow.serving", syntax="proto3")
    prometheus = monitoring.message_type.add(name="PrometheusConfig")
    _field(prometheus, "enable", 1, _F.TYPE_BOOL)
    _field(prometheus, "path", 2, _F.TYPE_STRING)
    config = monitoring.message_type.add(name="MonitoringConfig")
    _field(config, "prometheus_config", 1, _F.TYPE_MESSAGE,
           type_name=".tensorflow.serving.PrometheusConfig")
    pool.Add(monitoring)
    return pool


_POOL = _pool()
BatchingParameters = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))
MonitoringConfig = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))
