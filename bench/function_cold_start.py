"""Init duration of each Lambda function binary, as Lambda measures it: from process start to
the runtime's first `GET /2018-06-01/runtime/invocation/next` (logs, settings, clients and,
for classify and predict, the model loaded). A fake Runtime API on 127.0.0.1 stands in for
Lambda's; nothing is invoked.

    python3 bench/function_cold_start.py DIR [DIR ...] [--rounds 5]

Each DIR holds release binaries named ingest, classify and predict (for example
target/release). Prints the median init time and the binary size per function and DIR.
"""

import argparse
import http.server
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path

FUNCTIONS = ["ingest", "classify", "predict"]


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Records when `next` is first asked for, and never answers it."""

    asked = threading.Event()

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if self.path.endswith("/runtime/invocation/next"):
            RuntimeApi.asked.set()
            time.sleep(30)

    def log_message(self, *args):
        pass


def init_seconds(binary: Path, port: int) -> float:
    RuntimeApi.asked.clear()
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
               AWS_LAMBDA_FUNCTION_NAME=binary.name, AWS_LAMBDA_FUNCTION_VERSION="1",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="2048", AWS_REGION="us-east-1",
               AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_LAMBDA_LOG_FORMAT="Text", RUST_LOG="warn")
    started = time.perf_counter()
    process = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        if not RuntimeApi.asked.wait(timeout=60):
            raise SystemExit(f"{binary} never asked for an invocation: "
                             f"{process.stderr.read1(4096).decode(errors='replace')}")
        return time.perf_counter() - started
    finally:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    print("| function | binaries | size | init (median of %d) |" % args.rounds)
    print("|---|---|---|---|")
    for function in FUNCTIONS:
        # Rounds interleave the directories, so a noisy moment hits both alike.
        times = {folder: [] for folder in args.dirs}
        for _ in range(args.rounds):
            for folder in args.dirs:
                times[folder].append(init_seconds(folder / function, port))
        for folder in args.dirs:
            size = (folder / function).stat().st_size / 2**20
            print(f"| {function} | {folder} | {size:.1f} MiB | "
                  f"{statistics.median(times[folder]) * 1000:.0f} ms |")
    server.shutdown()


if __name__ == "__main__":
    main()
