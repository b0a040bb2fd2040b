#!/usr/bin/env python3
"""``make check-aarch64``: Cadence installed and run on arm64 under user-mode emulation.

Why: the appliance runs on Raspberry Pi boards (arm64) but is developed and
tested on x86_64. This builds (and caches) a Debian arm64 root, installs
Cadence in it as a Pi owner does (``scripts/install.sh``), runs the CLI on a
short shared clip and a small sound subset under each supported board's CPU
model, and compares every output with the same commands on this machine.

What emulation needs, and why each piece is here:

* ``qemu-aarch64-static`` registered through binfmt_misc with the ``F`` flag
  (so a chroot needs no qemu binary inside); without binfmt_misc the script
  falls back to ``proot -q qemu-aarch64-static`` (``--runner proot``).
* a Raspberry Pi ``/proc/cpuinfo`` bound into the root: qemu 7.2 passes the
  host's Intel/AMD one through, and XNNPACK's CPU detection then crashes on a
  null pointer. Representative files per board live in ``check_aarch64/``.
* ``QEMU_CPU`` = the board's core (qemu's default ``max`` CPU is ~10x slower).
* the machine's CA bundle for pip (the registries are reached through it).
* test timeouts scaled for emulation (~1/100 of native speed), and the one
  test that depends on real-time speed left out.

Timings under emulation are NOT figures for the boards: they only show the
check ran. Usage: ``scripts/check_aarch64.py [--suite bookworm,trixie] [--cpus ...]``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "check_aarch64"
SHARED = Path(os.environ.get("CADENCE_SHARED_DATA", "/work/shared/data"))
DEFAULT_CACHE = Path("/var/cache/cadence-aarch64")
SUITES = {"bookworm": "3.11", "trixie": "3.13"}
# qemu CPU model -> board profile name (device/boards.py) whose cpuinfo file is bound in
CPUS = {"cortex-a53": "zero2w", "cortex-a72": "pi4", "cortex-a76": "pi5"}
STAMP = ".cadence-root"
PACKAGES = "python3,python3-venv,python3-pip,ca-certificates,libportaudio2,libsndfile1,mosquitto,mosquitto-clients"
CLIP_SOURCE = "videos/jumping_jacks_12.mp4"
SOUND_LABELS = ("ball_drop", "hammering", "vacuum_cleaner")
TRAIN_PER_LABEL = 4
# landmarks: max |x86 - arm64| over x, y of landmarks both sides see (image-normalised units);
# the issue saw 0.007, mostly from OpenCV's aarch64 video decoding
LANDMARK_TOLERANCE = 0.02
PROBABILITY_TOLERANCE = 0.01
# ~10 s natively, so ~20-30 min emulated; the slowest pose tests (11-13 s natively each) are left to x86
TESTS = [
    "tests/test_pretrained.py",
    "tests/pose/test_blazepose_math.py",
    "tests/pose/test_extractor.py::test_pruned_landmark_model_gives_identical_outputs",
    "tests/pose/test_extractor.py::test_bad_inputs_give_clear_errors",
    "tests/pose/test_extractor.py::test_tampered_model_is_refused_with_fetch_hint",
    "tests/audio/test_audio_featureprint.py::test_shapes_and_types",
    "tests/audio/test_audio_featureprint.py::test_deterministic_across_calls_and_instances",
    "tests/test_boards.py::test_auto_profile_from_device_tree",
    "tests/test_boards.py::test_missing_variant_falls_back_to_float",
]
REALTIME_TESTS = ["tests/pose/test_extractor.py::test_live_stream_to_poses"]
NATIVE_TIMEOUT = 180  # pyproject's per-test timeout
TEST_TOOLS = "pytest pytest-asyncio pytest-timeout hypothesis"
IN_ROOT_SRC = "/root/cadence-src"
IN_ROOT_WORK = "/mnt/work"
IN_ROOT_DATA = "/root/shared/data"  # where tests/conftest.py looks: shared/ beside the checkout
# the landmark-model variants (manifest files built from another file): XNNPACK's int8 kernels differ per CPU
VARIANTS = sorted(name for name, entry in json.loads((REPO / "models" / "manifest.json").read_text())["files"].items()
                  if "built_by" in entry and "from" in entry)
VARIANT_SCRIPT = """import sys, numpy as np
from device.pose.extractor import HumanBodyPoseExtractor
from device.pose.landmarks import empty_landmarks
from device.video.file import read_video
clip, model, frames, out = sys.argv[1:5]
extractor = HumanBodyPoseExtractor(landmark_model=model)
rows = []
for item in read_video(clip, max_frames=int(frames), in_thread=False):
    found = extractor.process(item.value, item.timestamp)
    rows.append(found[0].landmarks if found else empty_landmarks())
np.save(out, np.array(rows))
"""
NOT_FIGURES = "timings under emulation are NOT figures for the boards (qemu runs ~1/100 to 1/200 native speed)"


class CheckError(RuntimeError):
    """A step of the check could not run (message says which and why)."""


def log(message: str) -> None:
    print(f"[check-aarch64 {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def sh(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=False, text=True, **kwargs)


# -- emulation set-up ---------------------------------------------------------------------------
def host_mirror() -> str:
    """The Debian mirror this machine's apt uses (the one registry mirror reachable here)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if line.startswith("URIs:") and len(words) > 1 and "security" not in words[1]:
                return words[1]
            if words[:1] == ["deb"] and len(words) > 2 and "security" not in words[1]:
                return words[1] if not words[1].startswith("[") else words[2]
    raise CheckError("no Debian mirror in /etc/apt/sources.list*: pass --mirror URL")


def qemu_cpus() -> set[str]:
    """CPU model names this qemu accepts (``qemu-aarch64-static -cpu help``)."""
    done = sh(["qemu-aarch64-static", "-cpu", "help"], capture_output=True)
    return {line.split()[0] for line in done.stdout.splitlines() if line.strip()}


def binfmt_ready() -> bool:
    """qemu-aarch64 registered with the F flag (interpreter opened at registration)."""
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not Path("/proc/sys/fs/binfmt_misc/status").exists():
        sh(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"], capture_output=True)
    if not entry.exists() and shutil.which("update-binfmts"):
        sh(["update-binfmts", "--enable", "qemu-aarch64"], capture_output=True)
    try:
        text = entry.read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1] for line in text.splitlines() if line.startswith("flags:")), "")
    return text.startswith("enabled") and "F" in flags


def preflight(runner: str) -> str:
    missing = [tool for tool in ("qemu-aarch64-static", "debootstrap") if not shutil.which(tool)]
    if missing:
        raise CheckError(f"missing {', '.join(missing)}: apt-get install qemu-user-static debootstrap binfmt-support")
    if os.geteuid() != 0:
        raise CheckError("run as root (debootstrap, chroot and mounts need it)")
    if runner == "auto":
        runner = "chroot" if binfmt_ready() else "proot"
    if runner == "proot" and not shutil.which("proot"):
        raise CheckError("binfmt_misc is not usable here and proot is missing: apt-get install proot")
    return runner


class Root:
    """A cached Debian arm64 root and how to run commands in it under one board's CPU."""

    def __init__(self, suite: str, cache: Path, runner: str) -> None:
        self.suite = suite
        self.path = cache / suite
        self.cache = cache
        self.runner = runner
        self.work = cache / f"work-{suite}"
        self.pip_cache = cache / "pip-cache"

    # building
    def build(self, mirror: str, rebuild: bool) -> bool:
        """Debootstrap the root unless cached; True when it was built now."""
        if rebuild and self.path.exists():
            shutil.rmtree(self.path)
        if (self.path / STAMP).is_file():
            return False
        tmp = self.cache / f"{self.suite}.tmp"
        complete = (tmp / "usr/bin/python3").exists() and not (tmp / "debootstrap").exists()
        if not complete:
            shutil.rmtree(tmp, ignore_errors=True)
            log(f"debootstrap {self.suite} arm64 into {tmp} (minutes: the second stage runs emulated)")
            done = sh(
                ["debootstrap", "--arch=arm64", "--variant=minbase", f"--include={PACKAGES}", self.suite, str(tmp), mirror],
                capture_output=True,
            )
            if done.returncode != 0:
                tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
                raise CheckError(f"debootstrap {self.suite} failed: {' | '.join(tail)}")
        if self.path.exists():
            shutil.rmtree(self.path)
        tmp.rename(self.path)
        (self.path / STAMP).write_text(f"{self.suite} arm64 built {_dt.datetime.now().isoformat(timespec='seconds')}\n")
        return True

    def prepare(self) -> None:
        """What the root needs from this machine each run: DNS, the CA bundle, mount points."""
        shutil.copy2("/etc/resolv.conf", self.path / "etc/resolv.conf")
        bundle = Path(os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
        shutil.copy2(bundle, self.path / "etc/ssl/host-ca-bundle.crt")
        for sub in (IN_ROOT_WORK, IN_ROOT_DATA, "/root/.cache/pip"):
            (self.path / sub.lstrip("/")).mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.pip_cache.mkdir(parents=True, exist_ok=True)

    # running
    def env(self, cpu: str) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "QEMU_CPU": cpu,
            "PIP_CERT": "/etc/ssl/host-ca-bundle.crt",
            "REQUESTS_CA_BUNDLE": "/etc/ssl/host-ca-bundle.crt",
            "SSL_CERT_FILE": "/etc/ssl/host-ca-bundle.crt",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PIP_DEFAULT_TIMEOUT": "120",
            "DEBIAN_FRONTEND": "noninteractive",
            "PYTHONDONTWRITEBYTECODE": "",
        }

    def binds(self, cpu: str) -> list[tuple[str, str, bool]]:
        """(host path, path in root, read-only) for one run."""
        cpuinfo = HERE / f"cpuinfo-{CPUS[cpu]}-{cpu}.txt"
        return [
            (str(cpuinfo), "/proc/cpuinfo", True),
            (str(SHARED), IN_ROOT_DATA, True),
            (str(self.work), IN_ROOT_WORK, False),
            (str(self.pip_cache), "/root/.cache/pip", False),
        ]

    def command(self, script: str, cpu: str, cwd: str = "/root") -> list[str]:
        """The host command that runs ``script`` (sh) in the root under ``cpu``."""
        env = [f"{k}={v}" for k, v in self.env(cpu).items() if v]
        inner = ["/usr/bin/env", "-i", *env, "/bin/sh", "-c", f"cd {shlex.quote(cwd)} && {script}"]
        if self.runner == "proot":
            args = ["proot", "-q", f"qemu-aarch64-static -cpu {cpu}", "-r", str(self.path), "-0",
                    "-b", "/dev", "-b", "/sys", "-b", "/proc"]
            for host, inside, _ in self.binds(cpu):
                args += ["-b", f"{host}:{inside}"]
            return args + inner
        r = shlex.quote(str(self.path))
        mounts = [f"mount -t proc proc {r}/proc", f"mount --rbind /dev {r}/dev", f"mount -t sysfs sys {r}/sys"]
        for host, inside, read_only in self.binds(cpu):
            target = shlex.quote(str(self.path) + inside)
            mounts.append(f"mount --bind {shlex.quote(host)} {target}")
            if read_only:
                mounts.append(f"mount -o remount,bind,ro {target}")
        # a private mount namespace: every mount disappears with the command
        body = " && ".join(mounts) + " && exec chroot " + r + " " + shlex.join(inner)
        return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", body]

    def run(self, script: str, cpu: str, *, timeout: float, cwd: str = "/root") -> tuple[int, str, float]:
        """Run in the root; returns (exit code, combined output, seconds)."""
        start = time.monotonic()
        try:
            done = subprocess.run(
                self.command(script, cpu, cwd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, timeout=timeout, check=False,
            )
            return done.returncode, done.stdout, time.monotonic() - start
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return 124, out + f"\n(timed out after {timeout:.0f} s)", time.monotonic() - start


# -- inputs ----------------------------------------------------------------------------------------
def cut_clip(dest: Path, seconds: float) -> Path:
    """The first ``seconds`` of a shared clip, re-encoded once so both sides decode one file."""
    import cv2

    if dest.is_file():
        return dest
    source = cv2.VideoCapture(str(SHARED / CLIP_SOURCE))
    fps = source.get(cv2.CAP_PROP_FPS)
    writer = None
    for _ in range(int(round(seconds * fps))):
        ok, frame = source.read()
        if not ok:
            break
        if writer is None:
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            writer = cv2.VideoWriter(str(dest), fourcc, fps, (frame.shape[1], frame.shape[0]))
        writer.write(frame)
    if writer is None:
        raise CheckError(f"could not read {SHARED / CLIP_SOURCE}")
    writer.release()
    return dest


def sound_subset(dest: Path) -> tuple[Path, list[str]]:
    """A small training folder (4 clips of 3 labels) and one held-out clip per label (relative paths)."""
    train = dest / "sounds"
    held_out = []
    for label in SOUND_LABELS:
        files = sorted((SHARED / "room-sounds-dev" / label).iterdir())
        (train / label).mkdir(parents=True, exist_ok=True)
        for path in files[:TRAIN_PER_LABEL]:
            if not (train / label / path.name).exists():
                shutil.copy2(path, train / label / path.name)
        held_out.append(str(files[TRAIN_PER_LABEL + 5].relative_to(SHARED)))
    return train, held_out


# -- the commands, on either side ---------------------------------------------------------------
def commands(cadence: str, python: str, clip: str, sounds: str, held_out: list[str], data: str, out: str,
             frames: int) -> dict[str, str]:
    """The steps, as shell commands, for either side (``out``: where each leaves its results)."""
    train = (
        f"{cadence} train sound {sounds} --out {out}/sound.model --classifier logistic --augment 0 "
        f"--seed 0 --jobs 1 --quiet --state-dir {out}/state"
    )
    steps = {
        "models status": f"{cadence} models status",
        "count": f"{cadence} count {clip} --json > {out}/count.jsonl",
        "pose": f"{cadence} pose {clip} --max-frames {frames} --out {out}/pose.npy",
    }
    script = f"{Path(clip).parent}/variant_poses.py"
    for variant in VARIANTS:
        steps[f"pose {variant}"] = f"{python} {script} {clip} {variant} {frames // 2} {out}/pose-{variant}.npy"
    steps["train sound"] = train
    classify = [f"{cadence} classify {data}/{path} --model {out}/sound.model --json" for path in held_out]
    steps["classify"] = "(" + " && ".join(classify) + f") > {out}/classify.jsonl"
    return steps


def read_results(out: Path) -> dict[str, Any]:
    """Counts, landmarks and sound results a side left in ``out``."""
    result: dict[str, Any] = {}
    try:
        updates = [json.loads(line) for line in (out / "count.jsonl").read_text().splitlines() if line.strip()]
        result["counts"] = [u["count"] for u in updates if not u.get("final")]
        result["final_count"] = next((u["count"] for u in updates if u.get("final")), None)
    except (OSError, ValueError, KeyError):
        pass
    for key, name in [("pose", "pose.npy"), *((f"pose {v}", f"pose-{v}.npy") for v in VARIANTS)]:
        try:
            result[key] = np.load(out / name)
        except (OSError, ValueError):
            pass
    try:
        clips = [json.loads(line) for line in (out / "classify.jsonl").read_text().splitlines() if line.strip()]
        result["sound"] = [(c["clip"]["label"], c["clip"]["probabilities"]) for c in clips]
    except (OSError, ValueError, KeyError):
        pass
    return result


def compare(ref: dict[str, Any], arm: dict[str, Any]) -> dict[str, tuple[bool, str]]:
    """Per check: (passed, what was seen)."""
    verdict: dict[str, tuple[bool, str]] = {}
    if "final_count" in arm:
        same = arm["final_count"] == ref.get("final_count") and arm["counts"] == ref.get("counts")
        verdict["count"] = (same, f"{arm['final_count']} (x86 {ref.get('final_count')}; "
                            f"{'same' if arm['counts'] == ref.get('counts') else 'different'} intermediate counts)")
    else:
        verdict["count"] = (False, "no output")
    for key in ("pose", *(f"pose {v}" for v in VARIANTS)):
        verdict[key] = compare_landmarks(ref.get(key), arm.get(key))
    if "sound" in arm and "sound" in ref and len(arm["sound"]) == len(ref["sound"]):
        labels = all(x[0] == y[0] for x, y in zip(arm["sound"], ref["sound"]))
        worst = max(abs(x[1][k] - y[1][k]) for x, y in zip(arm["sound"], ref["sound"]) for k in y[1])
        verdict["classify"] = (labels and worst <= PROBABILITY_TOLERANCE,
                               f"{'same' if labels else 'DIFFERENT'} labels, max |Δp| {worst:.4f} "
                               f"(tolerance {PROBABILITY_TOLERANCE})")
    else:
        verdict["classify"] = (False, "no output")
    return verdict


def compare_landmarks(ref: np.ndarray | None, arm: np.ndarray | None) -> tuple[bool, str]:
    """Same frames with a person, and x, y within LANDMARK_TOLERANCE on them."""
    if ref is None or arm is None or ref.shape != arm.shape:
        return False, "no output or other shape"
    a, b = arm[..., :2], ref[..., :2]
    found_a, found_b = np.isfinite(a).all(axis=(1, 2)), np.isfinite(b).all(axis=(1, 2))
    both = found_a & found_b
    worst = float(np.abs(a[both] - b[both]).max()) if both.any() else float("nan")
    passed = bool((found_a == found_b).all()) and worst <= LANDMARK_TOLERANCE
    return passed, f"max |Δxy| {worst:.4f} over {int(both.sum())} frames (tolerance {LANDMARK_TOLERANCE})"


def run_x86(work: Path, clip: Path, sounds: Path, held_out: list[str], frames: int) -> dict[str, Any]:
    out = work / "x86"
    out.mkdir(parents=True, exist_ok=True)
    cadence = shlex.join([sys.executable, "-m", "device"])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    steps = commands(cadence, sys.executable, str(clip), str(sounds), held_out, str(SHARED), str(out), frames)
    for name, script in steps.items():
        if name == "train sound" and (out / "sound.model").exists():
            continue
        done = sh(["/bin/sh", "-c", script], env=env, capture_output=True, cwd=str(out))
        if done.returncode != 0:
            raise CheckError(f"x86 reference `{name}` failed: {(done.stderr or done.stdout).strip()[-300:]}")
    return read_results(out)


# -- the arm64 side ------------------------------------------------------------------------------
def install(root: Root, cpu: str) -> tuple[bool, str, float]:
    """Copy the checkout into the root and run scripts/install.sh (no systemd in a chroot)."""
    src = root.path / IN_ROOT_SRC.lstrip("/")
    files = sh(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True).stdout.split()
    shutil.rmtree(src, ignore_errors=True)
    for name in files:
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    for model in (REPO / "models").glob("*.tflite"):  # fetched (or built) here: saves the wheel downloads
        shutil.copy2(model.resolve(), src / "models" / model.name)
    code, out, seconds = root.run(f"./scripts/install.sh --no-start", cpu, timeout=7200, cwd=IN_ROOT_SRC)
    if code == 0:
        tools = f"/opt/cadence/venv/bin/python -m pip install -q --target /root/testtools {TEST_TOOLS}"
        code, more, extra = root.run(f"test -d /root/testtools/pytest || {tools}", cpu, timeout=3600)
        out, seconds = out + more, seconds + extra
    return code == 0, out, seconds


def versions(root: Root, cpu: str) -> dict[str, str]:
    script = (
        "/opt/cadence/venv/bin/python -c \"import sys, platform, numpy, cv2, importlib.metadata as m; "
        "print(platform.machine(), sys.version.split()[0], 'numpy', numpy.__version__, 'opencv', cv2.__version__, "
        "'ai-edge-litert', m.version('ai-edge-litert'))\"; . /etc/os-release; echo $PRETTY_NAME"
    )
    code, out, _ = root.run(script, cpu, timeout=1800)
    lines = [line for line in out.splitlines() if line.strip() and not line.startswith("INFO")]
    return {"python": " ".join(lines[-2:-1]), "os": lines[-1] if lines else "?"} if code == 0 else {"error": out[-200:]}


def run_board(root: Root, cpu: str, steps: dict[str, str], timeout: float) -> dict[str, tuple[int, float, str]]:
    out_dir = root.work / cpu
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    results = {}
    for name, script in steps.items():
        code, out, seconds = root.run(script.replace("{OUT}", f"{IN_ROOT_WORK}/{cpu}"), cpu, timeout=timeout,
                                      cwd=f"{IN_ROOT_WORK}/{cpu}")
        (out_dir / f"{name.replace(' ', '_')}.log").write_text(out)
        results[name] = (code, seconds, out)
        log(f"{root.suite} {cpu} {name}: exit {code} in {seconds:.0f} s")
    return results


def run_tests(root: Root, cpu: str, scale: float) -> tuple[int, float, str]:
    deselect = " ".join(f"--deselect {t}" for t in REALTIME_TESTS)
    script = (
        f"PYTHONPATH={IN_ROOT_SRC}:/root/testtools /opt/cadence/venv/bin/python -m pytest -q -p no:cacheprovider "
        f"--timeout {int(NATIVE_TIMEOUT * scale)} {deselect} {' '.join(TESTS)}"
    )
    code, out, seconds = root.run(script, cpu, timeout=NATIVE_TIMEOUT * scale * 20, cwd=IN_ROOT_SRC)
    return code, seconds, out


def summary_line(out: str) -> str:
    lines = [line for line in out.splitlines() if " passed" in line or " failed" in line or " error" in line]
    return lines[-1].strip("= ") if lines else out.strip().splitlines()[-1][:120] if out.strip() else "no output"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="bookworm", help=f"comma-separated Debian suites ({', '.join(SUITES)}); 'all'")
    parser.add_argument("--cpus", default=",".join(CPUS), help="comma-separated qemu CPU models")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where roots, pip cache and outputs live")
    parser.add_argument("--mirror", help="Debian mirror (default: the one this machine's apt uses)")
    parser.add_argument("--runner", choices=("auto", "chroot", "proot"), default="auto")
    parser.add_argument("--seconds", type=float, default=2.5, help="length of the clip cut from the shared video")
    parser.add_argument("--pose-frames", type=int, default=24, help="frames `cadence pose` extracts")
    parser.add_argument("--timeout-scale", type=float, default=10.0, help="test timeouts x this")
    parser.add_argument("--tests-cpu", default="cortex-a72", help="CPU the test selection runs under ('none': skip)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached roots")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    suites = list(SUITES) if args.suite == "all" else args.suite.split(",")
    cpus = args.cpus.split(",")
    try:
        runner = preflight(args.runner)
        unknown = [c for c in cpus if c not in CPUS or c not in qemu_cpus()]
        if unknown:
            raise CheckError(f"unknown or unsupported CPU model(s) {unknown}; this qemu knows {sorted(qemu_cpus())}")
        args.cache.mkdir(parents=True, exist_ok=True)
        mirror = args.mirror or host_mirror()
        log(f"runner {runner}; cache {args.cache}; {NOT_FIGURES}")
        shared_work = args.cache / "inputs"
        shared_work.mkdir(exist_ok=True)
        clip = cut_clip(shared_work / f"clip-{args.seconds:g}s.mp4", args.seconds)
        (shared_work / "variant_poses.py").write_text(VARIANT_SCRIPT)
        sounds, held_out = sound_subset(shared_work)
        log("x86 reference run")
        ref = run_x86(shared_work, clip, sounds, held_out, args.pose_frames)
        rows: list[dict[str, Any]] = []
        for suite in suites:
            rows += check_suite(suite, args, runner, mirror, clip, sounds, held_out, ref, cpus)
    except CheckError as exc:
        print(f"check-aarch64: {exc}", file=sys.stderr)
        return 1
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0 if all(r["ok"] for r in rows) else 1


def check_suite(suite: str, args: argparse.Namespace, runner: str, mirror: str, clip: Path, sounds: Path,
                held_out: list[str], ref: dict[str, Any], cpus: list[str]) -> list[dict[str, Any]]:
    if suite not in SUITES:
        raise CheckError(f"unknown suite {suite}; known: {', '.join(SUITES)}")
    root = Root(suite, args.cache, runner)
    start = time.monotonic()
    try:
        built = root.build(mirror, args.rebuild)
    except CheckError as exc:
        return [{"suite": suite, "cpu": "-", "step": "debootstrap", "ok": False, "seen": str(exc), "seconds": 0}]
    root.prepare()
    rows = [{"suite": suite, "cpu": "-", "step": "root", "ok": True, "seconds": time.monotonic() - start,
             "seen": "built now" if built else "cached"}]
    for path in (clip, clip.parent / "variant_poses.py", *(p for p in sounds.rglob("*") if p.is_file())):
        target = root.work / path.relative_to(clip.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    ok, out, seconds = install(root, cpus[0])
    (root.work / "install.log").write_text(out)
    rows.append({"suite": suite, "cpu": cpus[0], "step": "install.sh --no-start", "ok": ok, "seconds": seconds,
                 "seen": "ok" if ok else out.strip().splitlines()[-1][:150] if out.strip() else "no output"})
    if not ok:
        return rows
    info = versions(root, cpus[0])
    rows.append({"suite": suite, "cpu": "-", "step": "versions", "ok": "error" not in info, "seconds": 0,
                 "seen": f"{info.get('os', '')}; {info.get('python', info.get('error', ''))}"})
    steps = commands("cadence", "/opt/cadence/venv/bin/python", f"{IN_ROOT_WORK}/{clip.name}", f"{IN_ROOT_WORK}/sounds",
                     held_out, IN_ROOT_DATA, "{OUT}", args.pose_frames)
    for cpu in cpus:
        results = run_board(root, cpu, steps, timeout=NATIVE_TIMEOUT * args.timeout_scale * 4)
        code, seconds, out = results["models status"]
        statuses = [line for line in out.splitlines() if line.strip() and not line.startswith("INFO")]
        fine = code == 0 and not any("missing" in s or "mismatch" in s for s in statuses)
        rows.append({"suite": suite, "cpu": cpu, "step": "models status", "ok": fine, "seconds": seconds,
                     "seen": f"{sum(' ok' in s for s in statuses)} ok" if fine else out.strip()[-150:]})
        verdict = compare(ref, read_results(root.work / cpu))
        for step in [name for name in steps if name != "models status"]:
            code, seconds, out = results[step]
            passed, seen = verdict.get(step, (code == 0, "ok" if code == 0 else out.strip()[-150:]))
            if code != 0:
                passed, seen = False, f"exit {code}: " + (out.strip().splitlines() or ["no output"])[-1][:150]
            rows.append({"suite": suite, "cpu": cpu, "step": step, "ok": passed, "seconds": seconds, "seen": seen})
        if cpu == args.tests_cpu:
            code, seconds, out = run_tests(root, cpu, args.timeout_scale)
            (root.work / f"tests-{cpu}.log").write_text(out)
            rows.append({"suite": suite, "cpu": cpu, "step": f"tests (timeout x{args.timeout_scale:g})",
                         "ok": code == 0, "seconds": seconds, "seen": summary_line(out)})
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\ncheck-aarch64 on {_dt.date.today().isoformat()}, host {platform.machine()} "
          f"{platform.python_version()}; {NOT_FIGURES}\n")
    print("| suite | CPU (board) | step | result | seen | emulated s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        board = f"{r['cpu']} ({CPUS[r['cpu']]})" if r["cpu"] in CPUS else r["cpu"]
        seen = str(r["seen"]).replace("|", "\\|")  # a markdown table cell
        print(f"| {r['suite']} | {board} | {r['step']} | {'PASS' if r['ok'] else 'FAIL'} | {seen} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
