"""How a workflow job runs its one library call: the job's log, and a warm fork server for every light job.

An evaluation, validation-loss or post-training job on a grid of small models computes for well under a second
to a few seconds (a training job for tens of seconds), but a fresh interpreter spends ~5 s importing torch and
transformers; a fit, frontier, plot, table or collect job computes for about as long as a fresh interpreter
spends importing pandas, scipy and matplotlib (1-2 s). Keeping one job per (task, checkpoint) and per (task, law)
is what makes incremental runs cheap, so instead of batching jobs, every light job (torch or not: each wrapper
that runs its library call through `_setup.call`; only the world and corpus data stages import directly) shares
a warm interpreter: the first one on a machine starts a *job server* (a detached process that imports the heavy modules
once and waits on a UNIX socket), and every light job sends it one call (`"module:function"`, its arguments, the
job's log, thread count, environment and working directory). The server forks a child that runs exactly that
call as the job would have (same environment, working directory, torch and OpenBLAS thread counts, so the same
bytes out), and sends back its exit status; the job process waits for it, so Snakemake still
sees each job succeed, fail or be cancelled (a job that is killed closes its socket and the server kills the
child's process group).

The server is keyed to the host, the interpreter, PYTHONPATH and a digest of the library's source files (its
subpackages included), so an edited library
never runs in a stale server; it exits after `T2SCALING_JOB_SERVER_IDLE_S` seconds (default 60) without work.
`T2SCALING_JOB_SERVER=off` runs every call in the job's own process, as does any job under SLURM (each job there
has its own allocation, so there is nothing to share). Memory columns of a `benchmark:` file describe the job
process only when the call ran in it; the wall time `s` is right either way.
"""

import contextlib
import fcntl
import hashlib
import importlib
import logging
import os
import pickle
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

LIBRARY = Path(__file__).resolve().parent
# What a light job imports; the server imports it once, before any fork (a module that is not installed, such
# as torch in a torch-free environment, is skipped: a job that needs it fails in its child as it would alone).
PRELOAD = ("torch", "pandas", "transformers", "transformers.models.qwen3.modeling_qwen3",
           "transformers.models.auto.modeling_auto", "transformers.models.auto.tokenization_auto",
           "t2scaling.data", "t2scaling.evaluate", "t2scaling.posttrain", "t2scaling.train",
           # the torch-free jobs: fits, frontiers, plots (Figure + the Agg canvas; no pyplot), tables, collect
           "numpy", "scipy.optimize", "scipy.special", "pyarrow.parquet", "matplotlib",
           "matplotlib.figure", "matplotlib.backends.backend_agg", "t2scaling.observations", "t2scaling.measure",
           "t2scaling.fit", "t2scaling.frontier", "t2scaling.plots", "t2scaling.tables", "t2scaling.extrapolate",
           "t2scaling.validate", "t2scaling.tasks", "t2scaling.inputs")
# Thread-count variables of the BLAS/OpenMP libraries: 1 in the server, so that no thread pool exists before a
# fork; a child sets its job's count (Snakemake sets them all to the job's `threads` for a fresh job process).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
PROGRESS_EVERY_S = 10.0  # seconds between the progress lines a job's log gets instead of a tqdm bar
START_TIMEOUT_S = 300  # a cold start on a network filesystem can take a minute
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- the job's log

def open_job_log(log_path, name, wildcards=None):
    """Send this process's Python-level stderr (log lines, warnings) to `log_path`; return a logger.

    Hugging Face progress bars ("Loading weights", "Writing model shards", "Generating train split") are turned
    off for the job: the environment variables are set (libraries read them when first imported, here or in a
    child process such as torchrun's; an explicit `=0` is left as the user set it), and the disable function of
    each library already imported (a job-server child inherits them) is called; nothing new is imported. The
    training and post-training loops see a stderr that is not a terminal and log progress lines instead of bars.
    """
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    for package, module, function in (("huggingface_hub", "huggingface_hub.utils", "disable_progress_bars"),
                                      ("datasets", "datasets.utils", "disable_progress_bars"),
                                      ("transformers", "transformers.utils.logging", "disable_progress_bar")):
        if package in sys.modules:
            with warnings.catch_warnings(), contextlib.suppress(Exception):
                warnings.simplefilter("ignore")  # "cannot disable": the user's =0 has priority
                getattr(importlib.import_module(module), function)()
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    sys.stderr = open(log_path, "w", buffering=1)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    job_log = logging.getLogger(f"t2scaling.rule.{name}")
    job_log.info("rule %s: wildcards %s", name, dict(wildcards or {}))
    return job_log


def _resolve(target):
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def run_here(target, args=(), kwargs=None, *, threads=None):
    """Run `module:function(*args, **kwargs)` in this process, with `threads` torch threads if torch is used."""
    if threads and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))
    return _resolve(target)(*args, **(kwargs or {}))


def _set_blas_threads(threads):
    """Give every OpenBLAS loaded in this process (numpy's, scipy's) `threads` threads, as a fresh job process
    started with OPENBLAS_NUM_THREADS=threads has them: a job-server child computes what that process would."""
    import ctypes

    with contextlib.suppress(ValueError, TypeError):
        threads = int(threads)
    if not isinstance(threads, int) or threads < 1:
        return
    with contextlib.suppress(OSError):
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1].lower()}
        for path in sorted(paths):
            with contextlib.suppress(OSError):
                lib = ctypes.CDLL(path)
                for symbol in ("openblas_set_num_threads", "openblas_set_num_threads64_",
                               "scipy_openblas_set_num_threads", "scipy_openblas_set_num_threads64_"):
                    if hasattr(lib, symbol):
                        getattr(lib, symbol)(ctypes.c_int(threads))


# --------------------------------------------------------------------------------------------- client side

def enabled():
    """Whether light calls go to the job server: on Linux, outside SLURM, unless T2SCALING_JOB_SERVER=off."""
    flag = os.environ.get("T2SCALING_JOB_SERVER", "auto").strip().lower()
    if flag in ("0", "off", "no", "false"):
        return False
    supported = sys.platform.startswith("linux") and hasattr(socket, "send_fds")
    if flag in ("1", "on", "yes", "true"):
        return supported
    return supported and "SLURM_JOB_ID" not in os.environ


def server_key():
    """Host, interpreter and library-source digest: a server only ever runs the code this job would run."""
    where = f"{socket.gethostname()}\0{sys.executable}\0{LIBRARY}\0{os.environ.get('PYTHONPATH', '')}"
    digest = hashlib.sha256(where.encode())
    for path in sorted(LIBRARY.rglob("*.py")):  # subpackages (t2scaling/fit, t2scaling/train) included
        digest.update(path.relative_to(LIBRARY).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def server_dir():
    """A private (0700) per-user directory on local disk for sockets, locks and server logs
    (T2SCALING_JOB_SERVER_DIR, else under $XDG_RUNTIME_DIR or the temporary directory)."""
    base = Path(os.environ.get("T2SCALING_JOB_SERVER_DIR") or Path(
        os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"t2scaling-jobs-{os.getuid()}")
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    if base.stat().st_uid != os.getuid():
        raise PermissionError(f"{base} belongs to another user; set T2SCALING_JOB_SERVER=off or TMPDIR")
    return base


def submit(target, args=(), kwargs=None, *, log_path, name, wildcards=None, threads=1):
    """Run `module:function(*args, **kwargs)` in a child of the warm job server; return its exit status (0 = ok).

    The child logs to `log_path` exactly as an in-process job would; this process's stdin/stdout/stderr are
    passed to it, so output that bypasses Python logging lands where Snakemake expects it.
    """
    request = dict(target=target, args=_plain(tuple(args)), kwargs=_plain(dict(kwargs or {})),
                   log_path=os.fspath(log_path), name=name, wildcards=_plain(dict(wildcards or {})), threads=threads,
                   cwd=os.getcwd(), env=dict(os.environ))
    address = server_dir() / f"{server_key()}.sock"
    for _ in range(3):  # a server that was just idling out closes without an answer; start a fresh one
        with _connect_or_start(address) as conn, _standard_fds() as fds:
            socket.send_fds(conn, [b"R"], fds)
            _send(conn, request)
            started = _receive(conn)
            if started is None:
                continue
            finished = _receive(conn)
            if finished is None:
                raise RuntimeError(f"the job server at {address} died while running {target}; see its log "
                                   f"{address.with_suffix('.log')} (or set T2SCALING_JOB_SERVER=off)")
            return finished["returncode"]
    raise RuntimeError(f"the job server at {address} closed three connections without starting {target}; see "
                       f"{address.with_suffix('.log')} (or set T2SCALING_JOB_SERVER=off)")


@contextlib.contextmanager
def _standard_fds():
    """This process's stdin, stdout and stderr, with /dev/null standing in for any that is closed."""
    fds, opened = [], []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            opened.append(os.open(os.devnull, os.O_RDWR))
            fds.append(opened[-1])
    try:
        yield fds
    finally:
        for fd in opened:
            os.close(fd)


def _plain(value):
    """Builtin types only (Snakemake's path strings and named lists become str and list), so the server never
    unpickles a workflow-engine class."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map(_plain, value)) if type(value) in (list, tuple) else list(map(_plain, value))
    return value


def _connect(address):
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(os.fspath(address))
    except OSError:
        conn.close()
        raise
    return conn


def _connect_or_start(address):
    with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
        return _connect(address)
    with open(address.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one starter per key, however many jobs arrive at once
        with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
            return _connect(address)
        address.unlink(missing_ok=True)  # a socket left by a server that was killed
        server_log = address.with_suffix(".log")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(LIBRARY.parent),
                                                                          os.environ.get("PYTHONPATH")])))
        with open(server_log, "a") as out:
            server = subprocess.Popen([sys.executable, "-m", "t2scaling.jobs", os.fspath(address)], env=env,
                                      stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd="/",
                                      start_new_session=True)  # survives this job; Ctrl-C in a terminal spares it
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the job server exited with status {server.returncode} while starting; "
                                   f"see {server_log} (or set T2SCALING_JOB_SERVER=off)")
            with contextlib.suppress(FileNotFoundError, ConnectionRefusedError):
                return _connect(address)
            time.sleep(0.05)
        server.kill()
        raise TimeoutError(f"the job server did not start within {START_TIMEOUT_S} s; see {server_log}")


def _send(conn, obj):
    data = pickle.dumps(obj)
    conn.sendall(struct.pack("!Q", len(data)) + data)


def _receive(conn):
    """One message, or None if the peer closed the connection first."""
    header = _read_exactly(conn, 8)
    if header is None:
        return None
    data = _read_exactly(conn, struct.unpack("!Q", header)[0])
    return None if data is None else pickle.loads(data)


def _read_exactly(conn, n):
    chunks = []
    while n:
        chunk = conn.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------- server side

def serve(address, idle_s=None):
    """Import PRELOAD, then fork one child per request until `idle_s` seconds pass with nothing running."""
    idle_s = float(os.environ.get("T2SCALING_JOB_SERVER_IDLE_S", 60) if idle_s is None else idle_s)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s job server %(process)d: %(message)s")
    t0 = time.perf_counter()
    os.environ.update(dict.fromkeys(THREAD_VARIABLES, "1"))  # read by the libraries as they load, just below
    imported = []
    for module in PRELOAD:
        try:
            importlib.import_module(module)
            imported.append(module)
        except ImportError as err:
            log.info("not preloading %s: %s", module, err)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)  # no thread pool before fork; each child sets its own count
    log.info("imported %s in %.1f s; serving %s", ", ".join(imported), time.perf_counter() - t0, address)

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.fspath(address))
    listener.listen(64)
    inode = os.stat(address).st_ino
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    children = {}  # pid -> client connection
    last_busy = time.monotonic()
    while children or time.monotonic() - last_busy < idle_s:
        for key, _ in selector.select(timeout=0.1):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                pid = _start_child(conn, listener, selector, children)
                if pid is not None:
                    children[pid] = conn
                    selector.register(conn, selectors.EVENT_READ, pid)
                    _send(conn, {"pid": pid})
            else:  # a client closed its connection: Snakemake cancelled the job
                log.info("job of child %d was cancelled; stopping it", key.data)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(key.data, signal.SIGTERM)
                selector.unregister(key.fileobj)
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = children.pop(pid)
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(conn)
            with contextlib.suppress(OSError):
                _send(conn, {"returncode": os.waitstatus_to_exitcode(status)})
            conn.close()
            last_busy = time.monotonic()
    with contextlib.suppress(FileNotFoundError):
        if os.stat(address).st_ino == inode:  # never remove a successor's socket
            os.unlink(address)
    log.info("idle for %.0f s; exiting", idle_s)


def _start_child(conn, listener, selector, children):
    conn.settimeout(30)
    try:
        _, fds, _, _ = socket.recv_fds(conn, 1, 3)
        request = _receive(conn)
    except OSError as err:
        log.warning("dropped a malformed request: %s", err)
        conn.close()
        return None
    conn.settimeout(None)
    if request is None or len(fds) != 3:
        conn.close()
        return None
    pid = os.fork()
    if pid:
        for fd in fds:
            os.close(fd)
        return pid
    status = 1
    try:
        os.setsid()  # its own process group, so a cancelled job's grandchildren stop too
        _stop_with_server()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        selector.close()
        listener.close()
        for other in children.values():
            other.close()
        conn.close()
        for i, fd in enumerate(fds):
            os.dup2(fd, i)
            os.close(fd)
        sys.stdin, sys.stdout = open(0, closefd=False), open(1, "w", buffering=1, closefd=False)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _set_blas_threads(request["env"].get("OPENBLAS_NUM_THREADS") or request["threads"] or 1)
        job_log = open_job_log(request["log_path"], request["name"], request["wildcards"])
        job_log.info("running %s in job-server child %d", request["target"], os.getpid())
        try:
            run_here(request["target"], request["args"], request["kwargs"], threads=request["threads"])
            status = 0
        except BaseException:
            job_log.error("%s failed:\n%s", request["target"], traceback.format_exc())
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


def _stop_with_server():
    """SIGTERM this child if the server dies first (Linux prctl PR_SET_PDEATHSIG): its job has already been told
    it failed, so no output may appear after that."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
