"""Fakes for the two hardware boundaries this machine lacks: NVML (``pynvml``) and /sys/class/powercap.

``from fakes.pynvml import FakeGpu, FakeClock, install_fake_nvml`` in the tests (pytest puts ``tests/``
on ``sys.path``); ``tests.fakes.pynvml`` from the repository root (the bench).
"""
