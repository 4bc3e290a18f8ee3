"""The environment for a process that tests start with forced host devices."""
import os


def forced_devices_env(devices: int) -> dict:
    """``os.environ`` with ``devices`` forced CPU devices added to the session's ``XLA_FLAGS``
    (which the test session's conftest sets), for a child process."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    return dict(os.environ, XLA_FLAGS=flags.strip())
