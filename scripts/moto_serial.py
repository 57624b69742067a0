"""moto's server with its requests applied one at a time.

moto 5.2's TransactWriteItems deep-copies the table for rollback while other threads write to
it, and under concurrent requests fails with "dictionary changed size during iteration" (an
HTTP 500). DynamoDB applies each request atomically; serializing the requests here gives moto
the same linearizable behaviour, so concurrency tests exercise our conditions, not moto's race.
Usage: python moto_serial.py HOST PORT
"""

import os
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.threaded_moto_server import MotoRequestHandler
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def serial(environ, start_response):
        with lock:
            # Drain the response inside the lock: moto builds it lazily.
            return list(app(environ, start_response))

    def stop(*_):
        # Exit at once: a graceful interpreter shutdown frees moto's tables object by object,
        # which after a bench run (~0.9 GB) kept a CPU busy for ~90 s after the run ended.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    run_simple(host, port, serial, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
