"""What this machine is, as the system says: the processor's name and its instruction-set flags
(``/proc/cpuinfo`` on Linux). Measured figures are kept and reported per machine, never across
machines. Imports nothing heavy, so the benchmarks' parent processes can use it."""

import functools
import platform


@functools.cache
def _cpu_info():
    name, flags = None, frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name is None:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = frozenset(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def cpu_name():
    """The processor's name."""
    return _cpu_info()[0]


def cpu_flags():
    """The processor's instruction-set flags (e.g. ``avx512_bf16``, ``amx_tile``); empty where
    the system does not list them."""
    return _cpu_info()[1]
