"""CPU accounting by role, on this process's real children."""

import subprocess
import sys
import time

from bench import cpu


def busy_child(*arguments: str) -> subprocess.Popen[bytes]:
    """A Python child that burns CPU, with `arguments` at the end of its command line."""
    loop = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    code = loop + "time.sleep(30)"
    return subprocess.Popen([sys.executable, "-c", code, *arguments])


def test_children_are_summed_by_role_and_divided_by_orders() -> None:
    placer = busy_child("-m", "placer")
    try:
        before = cpu.sample()
        for _ in range(100):  # until its 0.3 s of CPU are spent (bounded: 10 s)
            if cpu.sample().seconds["placer"] >= 0.3:
                break
            time.sleep(0.1)
        after = cpu.sample()
    finally:
        placer.kill()
        placer.wait(timeout=10)
    per_order = cpu.ms_per_order(before, after, orders=100)
    assert 2.0 <= per_order["placer"] < 4.0  # at most 0.3 s over 100 orders
    assert per_order["total"] >= per_order["placer"]


def test_roles_from_command_lines() -> None:
    daprd = ["/cache/daprd", "--app-id", "order-api", "--app-port", "8000"]
    assert cpu._role(daprd) == "daprd order-api"
    assert cpu._role(["/venv/bin/python", "-m", "app"]) == "api"
    assert cpu._role(["/venv/bin/python", "-m", "placer"]) == "placer"
    assert cpu._role(["python", "-m", "uvicorn", "bench.peers:floor"]) == "peer app"
    assert cpu._role(["/usr/bin/redis-server", "127.0.0.1:6379"]) == "redis"
    assert cpu._role(["python", "-c", "spawn_main()"]) is None  # a worker: its parent's role
