"""measure.py TIMEOUT_S MEM_GIB LOG -- CMD...: runs CMD with its output in
LOG, stops it (its whole session) past TIMEOUT_S seconds or MEM_GIB GiB of
RSS, and prints one JSON line: wall seconds, peak RSS in bytes (the
kernel's, from wait4), exit code, and why it was stopped.

bench.py runs each measured command through this small process (standard
library only) rather than forking it from itself: a forked child's peak RSS
starts at its parent's, so a parent holding generated data would report its
own size for every child.
"""

import json
import os
import signal
import subprocess
import sys
import time


def main() -> None:
    timeout, mem, log = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    assert sys.argv[4] == "--", sys.argv
    cmd = sys.argv[5:]
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    why = ""
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - start > timeout:
            why = f"stopped after {timeout:.0f} s"
        else:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) * 1024
                if rss > mem * 2**30:
                    why = f"stopped at {mem:g} GiB RSS"
            except (OSError, StopIteration):
                pass
        if why:
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, ru = os.wait4(proc.pid, 0)
            break
        time.sleep(0.02)
    print(json.dumps({"wall": time.monotonic() - start, "rss": ru.ru_maxrss * 1024,
                      "code": os.waitstatus_to_exitcode(status), "why": why}))


if __name__ == "__main__":
    main()
