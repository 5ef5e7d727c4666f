"""Entry point of a worker started as a fresh interpreter (see ``SpawnLauncher``)."""

import sys

from . import wire, zygote
from .worker import run

if __name__ == "__main__":
    fd = int(sys.argv[1])
    request = wire.recv(fd)
    zygote._warm_up()
    run(fd, request)
