/*
 * tfvae_encode: run a tfvae SavedModel's signatures on images or vectors through the TensorFlow
 * C API.
 *
 *   tfvae_encode [--signature NAME] [--seed S] [--float64] [--label L] EXPORT_DIR INPUT...
 *
 * Loads EXPORT_DIR (e.g. export/mnist_vae/1) with TF_LoadSessionFromSavedModel, the C++ loader
 * TF Serving uses, finds the signature's tensors in the MetaGraphDef and runs each INPUT through
 * it. The signature (default "encode") is any that takes the examples "x": encode (outputs
 * z_mean, z_stddev), reconstruct, log_likelihood or score (the anomaly score, and "anomaly" when
 * the export carries the run's threshold). An INPUT is
 *
 *   - a binary PGM file (P5, maxval <= 255): one [1, height, width, 1] image, pixels / maxval;
 *   - any other file: raw little-endian float32 values in row-major [N, *E] order, N >= 1
 *     examples of the signature's shape E (784 values per 28x28x1 image, D per vector [D]).
 *
 * A signature that takes seeds ("seed", int64 [N]: log_likelihood, score) gives every example
 * the seed S of --seed (default 0); the same seed gives the same numbers in every loader. A
 * conditional model's signature also takes "label" (int64 [N]): --label L gives every example
 * class L, and is required by such a model (refused by another).
 *
 * Prints one JSON line per INPUT on stdout, every output of the signature by its name, a list
 * per example (a number per example for outputs [N] such as score):
 *   {"image": "PATH", "z_mean": [[...]], "z_stddev": [[...]]}
 *   {"image": "PATH", "anomaly": [0, 1], "score": [87.5, 412.25]}
 * A request the model refuses (NaN, a pixel outside [0, 1] for a Bernoulli model, a wrong
 * shape, or a float64 tensor with --float64, which sends the values as float64) is reported on
 * stderr as
 *   tfvae_encode: PATH: INVALID_ARGUMENT: <TensorFlow's message>
 * and the next INPUT is still answered. Exit status: 0 if every INPUT was answered, 1 if any
 * failed, 2 on a usage error or a model that cannot be loaded.
 *
 * The signature's tensor names are read from the MetaGraphDef's protobuf wire format by the
 * small reader below, so the program needs no protobuf library.
 */

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/c/c_api.h"

#define MAX_RANK 8
#define MAX_OUTPUTS 8

/* ------------------------------------------------------------ protobuf wire-format reading */

typedef struct {
  const uint8_t *p, *end;
} Reader;

static int read_varint(Reader *r, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 1;
    }
  }
  return 0;
}

/* Reads the next field's number and wire type; a length-delimited field's bytes go to *sub. */
static int next_field(Reader *r, uint32_t *field, uint32_t *wire, Reader *sub, uint64_t *value) {
  uint64_t key;
  if (r->p >= r->end || !read_varint(r, &key)) return 0;
  *field = (uint32_t)(key >> 3);
  *wire = (uint32_t)(key & 7);
  switch (*wire) {
    case 0:
      return read_varint(r, value);
    case 1:
      if (r->end - r->p < 8) return 0;
      r->p += 8;
      return 1;
    case 2: {
      uint64_t len;
      if (!read_varint(r, &len) || (uint64_t)(r->end - r->p) < len) return 0;
      sub->p = r->p;
      sub->end = r->p + len;
      r->p += len;
      return 1;
    }
    case 5:
      if (r->end - r->p < 4) return 0;
      r->p += 4;
      return 1;
    default:
      return 0;
  }
}

static int equals(Reader s, const char *text) {
  size_t n = strlen(text);
  return (size_t)(s.end - s.p) == n && memcmp(s.p, text, n) == 0;
}

/* In a map<string, V> field `field` of message `msg`, the value V whose key is `key`. */
static int map_value(Reader msg, uint32_t field, const char *key, Reader *value) {
  uint32_t f, w;
  Reader sub, k = {0}, v = {0};
  uint64_t ignored;
  while (next_field(&msg, &f, &w, &sub, &ignored)) {
    if (f != field || w != 2) continue;
    int have_key = 0, have_value = 0;
    Reader entry = sub, part;
    uint32_t ef, ew;
    while (next_field(&entry, &ef, &ew, &part, &ignored)) {
      if (ef == 1 && ew == 2) k = part, have_key = 1;
      if (ef == 2 && ew == 2) v = part, have_value = 1;
    }
    if (have_key && have_value && equals(k, key)) {
      *value = v;
      return 1;
    }
  }
  return 0;
}

typedef struct {
  char alias[64]; /* the name in the signature: "x", "z_mean", "score" */
  char name[256]; /* the graph's tensor: "encode_x:0" */
  int dtype;      /* tensorflow::DataType: 1 float, 2 double, 3 int32, 9 int64, 10 bool */
  int rank;
  int64_t dims[MAX_RANK];
} TensorInfo;

/* TensorInfo: name = 1, dtype = 2, tensor_shape = 3 (TensorShapeProto: dim = 2 {size = 1}). */
static int tensor_info(Reader info, TensorInfo *out) {
  uint32_t f, w;
  Reader sub;
  uint64_t value;
  memset(out, 0, sizeof *out);
  while (next_field(&info, &f, &w, &sub, &value)) {
    if (f == 1 && w == 2 && (size_t)(sub.end - sub.p) < sizeof out->name) {
      memcpy(out->name, sub.p, sub.end - sub.p);
    } else if (f == 2 && w == 0) {
      out->dtype = (int)value;
    } else if (f == 3 && w == 2) {
      Reader shape = sub, dim;
      uint32_t sf, sw;
      while (next_field(&shape, &sf, &sw, &dim, &value)) {
        if (sf != 2 || sw != 2 || out->rank == MAX_RANK) continue;
        uint32_t df, dw;
        Reader unused;
        uint64_t size = 0;
        while (next_field(&dim, &df, &dw, &unused, &value))
          if (df == 1 && dw == 0) size = value;
        out->dims[out->rank++] = (int64_t)size;
      }
    }
  }
  return out->name[0] != '\0';
}

/* MetaGraphDef.signature_def = 5; SignatureDef.inputs = 1, outputs = 2. */
static int find_tensor(TF_Buffer *meta_graph, const char *signature, int outputs,
                       const char *alias, TensorInfo *out) {
  Reader meta = {meta_graph->data, (const uint8_t *)meta_graph->data + meta_graph->length};
  Reader sig, info;
  return map_value(meta, 5, signature, &sig) && map_value(sig, outputs ? 2 : 1, alias, &info) &&
         tensor_info(info, out);
}

/* Every output of `signature` (at most `max` of them), sorted by alias; returns their count. */
static int signature_outputs(TF_Buffer *meta_graph, const char *signature, TensorInfo *outputs,
                             int max) {
  Reader meta = {meta_graph->data, (const uint8_t *)meta_graph->data + meta_graph->length};
  Reader sig, sub, part;
  uint32_t f, w, ef, ew;
  uint64_t ignored;
  int count = 0;
  if (!map_value(meta, 5, signature, &sig)) return 0;
  while (next_field(&sig, &f, &w, &sub, &ignored)) {
    if (f != 2 || w != 2 || count == max) continue; /* SignatureDef.outputs = 2 */
    Reader key = {0}, info = {0};
    int have_key = 0, have_info = 0;
    while (next_field(&sub, &ef, &ew, &part, &ignored)) {
      if (ef == 1 && ew == 2) key = part, have_key = 1;
      if (ef == 2 && ew == 2) info = part, have_info = 1;
    }
    TensorInfo *out = &outputs[count];
    if (!have_key || !have_info || (size_t)(key.end - key.p) >= sizeof out->alias ||
        !tensor_info(info, out))
      continue;
    memcpy(out->alias, key.p, key.end - key.p);
    out->alias[key.end - key.p] = '\0';
    count++;
  }
  for (int i = 1; i < count; i++) /* insertion sort: a handful of outputs */
    for (int j = i; j > 0 && strcmp(outputs[j - 1].alias, outputs[j].alias) > 0; j--) {
      TensorInfo t = outputs[j];
      outputs[j] = outputs[j - 1];
      outputs[j - 1] = t;
    }
  return count;
}

static TF_Output graph_output(TF_Graph *graph, const char *tensor_name) {
  char op[256];
  TF_Output out = {NULL, 0};
  const char *colon = strrchr(tensor_name, ':');
  size_t n = colon ? (size_t)(colon - tensor_name) : strlen(tensor_name);
  if (n >= sizeof op) return out;
  memcpy(op, tensor_name, n);
  op[n] = '\0';
  out.oper = TF_GraphOperationByName(graph, op);
  out.index = colon ? atoi(colon + 1) : 0;
  return out;
}

/* ------------------------------------------------------------------------- reading images */

typedef struct {
  float *values;
  int rank;
  int64_t dims[MAX_RANK];
} Image;

static int read_file(const char *path, uint8_t **data, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  size_t cap = 1 << 16, n = 0, got;
  uint8_t *buf = malloc(cap);
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  *data = buf;
  *size = n;
  return buf != NULL;
}

static const uint8_t *pgm_token(const uint8_t *p, const uint8_t *end, long *value) {
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
    if (p < end && *p == '#') {
      while (p < end && *p != '\n') p++;
      continue;
    }
    break;
  }
  if (p >= end || *p < '0' || *p > '9') return NULL;
  *value = 0;
  while (p < end && *p >= '0' && *p <= '9' && *value < 100000) *value = *value * 10 + (*p++ - '0');
  return p;
}

/* Reads INPUT into `image`; `shape` is the signature's input shape [-1, *E]. */
static int read_image(const char *path, const TensorInfo *shape, Image *image, char *error,
                      size_t error_size) {
  uint8_t *data;
  size_t size;
  if (!read_file(path, &data, &size)) {
    snprintf(error, error_size, "cannot read the file");
    return 0;
  }
  int ok = 0;
  if (size >= 2 && data[0] == 'P' && data[1] == '5') {
    long width, height, maxval;
    const uint8_t *p = data + 2, *end = data + size;
    if ((p = pgm_token(p, end, &width)) && (p = pgm_token(p, end, &height)) &&
        (p = pgm_token(p, end, &maxval)) && p < end && maxval > 0 && maxval < 256 &&
        (size_t)(end - (p + 1)) >= (size_t)(width * height)) {
      p++; /* the single whitespace after maxval */
      image->values = malloc(sizeof(float) * width * height);
      for (long i = 0; i < width * height; i++) image->values[i] = (float)p[i] / (float)maxval;
      image->rank = 4;
      image->dims[0] = 1, image->dims[1] = height, image->dims[2] = width, image->dims[3] = 1;
      ok = 1;
    } else {
      snprintf(error, error_size, "expected a binary PGM (P5) with maxval <= 255");
    }
  } else {
    int64_t per_image = 1;
    for (int i = 1; i < shape->rank; i++) per_image *= shape->dims[i];
    size_t count = size / sizeof(float);
    if (shape->rank < 2 || per_image <= 0 || size % sizeof(float) || count == 0 ||
        count % per_image) {
      snprintf(error, error_size,
               "expected raw float32 values, a multiple of %lld per example, got %zu bytes",
               (long long)per_image, size);
    } else {
      image->values = malloc(size);
      memcpy(image->values, data, size); /* float32 files are little-endian, like the host */
      image->rank = shape->rank;
      image->dims[0] = (int64_t)(count / per_image);
      for (int i = 1; i < shape->rank; i++) image->dims[i] = shape->dims[i];
      ok = 1;
    }
  }
  free(data);
  return ok;
}

/* ------------------------------------------------------------------------------- running */

static const char *code_name(TF_Code code) {
  static const char *names[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};
  return (unsigned)code < sizeof names / sizeof *names ? names[code] : "UNKNOWN";
}

/* An output [N, ...] as JSON: a list per example (its values flat), or for an output [N] a
   number per example. float32 and float64 as floats, integers and booleans as integers. */
static void print_output(const char *key, TF_Tensor *t) {
  int64_t rows = TF_NumDims(t) ? TF_Dim(t, 0) : 1, cols = 1;
  for (int d = 1; d < TF_NumDims(t); d++) cols *= TF_Dim(t, d);
  TF_DataType type = TF_TensorType(t);
  const void *data = TF_TensorData(t);
  printf("\"%s\": [", key);
  for (int64_t i = 0; i < rows; i++) {
    if (i) printf(", ");
    if (TF_NumDims(t) > 1) printf("[");
    for (int64_t j = 0; j < cols; j++) {
      int64_t k = i * cols + j;
      if (j) printf(", ");
      if (type == TF_FLOAT) {
        float v = ((const float *)data)[k];
        if (isfinite(v)) printf("%.9g", v);
        else printf("NaN"); /* as Python's json reads it */
      } else if (type == TF_DOUBLE) {
        double v = ((const double *)data)[k];
        if (isfinite(v)) printf("%.17g", v);
        else printf("NaN");
      } else if (type == TF_INT64) {
        printf("%lld", (long long)((const int64_t *)data)[k]);
      } else if (type == TF_INT32) {
        printf("%d", (int)((const int32_t *)data)[k]);
      } else if (type == TF_BOOL) {
        printf("%d", ((const unsigned char *)data)[k] ? 1 : 0);
      } else {
        printf("null");
      }
    }
    if (TF_NumDims(t) > 1) printf("]");
  }
  printf("]");
}

static void json_string(const char *s) {
  putchar('"');
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') putchar('\\');
    if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
    else putchar(*s);
  }
  putchar('"');
}

static void no_free(void *data, size_t len, void *arg) { (void)data, (void)len, (void)arg; }

static int usage(void) {
  fprintf(stderr,
          "usage: tfvae_encode [--signature NAME] [--seed S] [--float64] [--label L] "
          "EXPORT_DIR INPUT...\n");
  return 2;
}

/* An int64 [n] tensor of `value` repeated. */
static TF_Tensor *repeated_int64(int64_t n, int64_t value) {
  int64_t dims[1] = {n};
  TF_Tensor *t = TF_AllocateTensor(TF_INT64, dims, 1, sizeof(int64_t) * (size_t)n);
  int64_t *values = TF_TensorData(t);
  for (int64_t i = 0; i < n; i++) values[i] = value;
  return t;
}

int main(int argc, char **argv) {
  const char *signature = "encode";
  int as_float64 = 0, arg = 1, has_label = 0, has_seed = 0;
  int64_t label_value = 0, seed_value = 0;
  for (; arg < argc && strncmp(argv[arg], "--", 2) == 0; arg++) {
    char *end;
    if (strcmp(argv[arg], "--float64") == 0) as_float64 = 1;
    else if (strcmp(argv[arg], "--signature") == 0 && arg + 1 < argc) signature = argv[++arg];
    else if (strcmp(argv[arg], "--label") == 0 && arg + 1 < argc) {
      label_value = strtoll(argv[++arg], &end, 10);
      if (*end || end == argv[arg]) return usage();
      has_label = 1;
    } else if (strcmp(argv[arg], "--seed") == 0 && arg + 1 < argc) {
      seed_value = strtoll(argv[++arg], &end, 10);
      if (*end || end == argv[arg]) return usage();
      has_seed = 1;
    } else return usage();
  }
  if (argc - arg < 2) return usage();
  const char *export_dir = argv[arg++];

  TF_Status *status = TF_NewStatus();
  TF_Graph *graph = TF_NewGraph();
  TF_SessionOptions *options = TF_NewSessionOptions();
  TF_Buffer *meta_graph = TF_NewBuffer();
  const char *tags[] = {"serve"};
  TF_Session *session = TF_LoadSessionFromSavedModel(options, NULL, export_dir, tags, 1, graph,
                                                     meta_graph, status);
  if (TF_GetCode(status) != TF_OK) {
    fprintf(stderr, "tfvae_encode: cannot load %s: %s\n", export_dir, TF_Message(status));
    return 2;
  }
  TensorInfo x, outputs_info[MAX_OUTPUTS];
  int num_outputs = signature_outputs(meta_graph, signature, outputs_info, MAX_OUTPUTS);
  if (!find_tensor(meta_graph, signature, 0, "x", &x) || num_outputs == 0) {
    fprintf(stderr, "tfvae_encode: %s: signature \"%s\" with input x and outputs not found\n",
            export_dir, signature);
    return 2;
  }
  TensorInfo label, seed;
  int conditional = find_tensor(meta_graph, signature, 0, "label", &label);
  if (conditional != has_label) {
    fprintf(stderr, "tfvae_encode: %s: --label %s\n", export_dir,
            conditional ? "is required: the model is conditional (its signature takes a label)"
                        : "is for a conditional model; this one takes no label");
    return 2;
  }
  int seeded = find_tensor(meta_graph, signature, 0, "seed", &seed);
  if (has_seed && !seeded) {
    fprintf(stderr, "tfvae_encode: %s: --seed is for a signature that takes seeds; \"%s\" "
            "takes none\n", export_dir, signature);
    return 2;
  }
  /* The inputs: x, then the seeds and the labels the signature takes. */
  TF_Output inputs[3];
  int num_inputs = 0;
  inputs[num_inputs++] = graph_output(graph, x.name);
  if (seeded) inputs[num_inputs++] = graph_output(graph, seed.name);
  if (conditional) inputs[num_inputs++] = graph_output(graph, label.name);
  TF_Output outputs[MAX_OUTPUTS];
  int found = 1;
  for (int i = 0; i < num_inputs; i++) found = found && inputs[i].oper;
  for (int i = 0; i < num_outputs; i++) {
    outputs[i] = graph_output(graph, outputs_info[i].name);
    found = found && outputs[i].oper;
  }
  if (!found) {
    fprintf(stderr, "tfvae_encode: %s: the signature's tensors are not in the graph\n",
            export_dir);
    return 2;
  }

  int failures = 0;
  for (; arg < argc; arg++) {
    const char *path = argv[arg];
    Image image = {0};
    char error[256];
    if (!read_image(path, &x, &image, error, sizeof error)) {
      fprintf(stderr, "tfvae_encode: %s: %s\n", path, error);
      failures++;
      continue;
    }
    size_t count = 1;
    for (int d = 0; d < image.rank; d++) count *= (size_t)image.dims[d];
    void *data = image.values;
    double *doubles = NULL;
    if (as_float64) {
      doubles = malloc(sizeof(double) * count);
      for (size_t i = 0; i < count; i++) doubles[i] = image.values[i];
      data = doubles;
    }
    size_t bytes = count * (as_float64 ? sizeof(double) : sizeof(float));
    TF_Tensor *tensors[3] = {NULL, NULL, NULL};
    int t = 0;
    tensors[t++] = TF_NewTensor(as_float64 ? TF_DOUBLE : TF_FLOAT, image.dims, image.rank, data,
                                bytes, no_free, NULL);
    /* One seed and one label per example of the file. */
    if (seeded) tensors[t++] = repeated_int64(image.dims[0], seed_value);
    if (conditional) tensors[t++] = repeated_int64(image.dims[0], label_value);
    TF_Tensor *results[MAX_OUTPUTS] = {NULL};
    TF_SessionRun(session, NULL, inputs, tensors, num_inputs, outputs, results, num_outputs,
                  NULL, 0, NULL, status);
    if (TF_GetCode(status) != TF_OK) {
      fprintf(stderr, "tfvae_encode: %s: %s: %s\n", path, code_name(TF_GetCode(status)),
              TF_Message(status));
      failures++;
    } else {
      printf("{\"image\": ");
      json_string(path);
      for (int i = 0; i < num_outputs; i++) {
        printf(", ");
        print_output(outputs_info[i].alias, results[i]);
      }
      printf("}\n");
      fflush(stdout);
    }
    for (int i = 0; i < num_outputs; i++)
      if (results[i]) TF_DeleteTensor(results[i]);
    for (int i = 0; i < num_inputs; i++)
      if (tensors[i]) TF_DeleteTensor(tensors[i]);
    free(image.values);
    free(doubles);
  }

  TF_CloseSession(session, status);
  TF_DeleteSession(session, status);
  TF_DeleteBuffer(meta_graph);
  TF_DeleteSessionOptions(options);
  TF_DeleteGraph(graph);
  TF_DeleteStatus(status);
  return failures ? 1 : 0;
}
