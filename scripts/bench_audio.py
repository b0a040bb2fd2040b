#!/usr/bin/env python3
"""Real-time factor of the audio path: feature print + classification.

Streams dev clips (concatenated into one long recording) through
``AudioFeaturePrint`` (default windows: 3 s every 1.5 s) and a logistic
regression trained on a few clips, on one thread, and prints CPU seconds
per second of audio (target ≤ 0.01 on the development machine), with the
share of the front-end stages. Also prints the clip-level cost (training
extraction) and the feature size.

    .venv/bin/python scripts/bench_audio.py [--seconds 120] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from device.audio import frontend  # noqa: E402
from device.audio.pipeline import sound_pipeline  # noqa: E402
from device.audio.settings import SoundSettings  # noqa: E402
from device.audio.featureprint import AudioFeaturePrint  # noqa: E402
from device.audio.sources import SAMPLE_RATE, load_audio  # noqa: E402
from device.components import Examples, TemporalFeature, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "data" / "room-sounds-dev")
    parser.add_argument("--seconds", type=float, default=120.0, help="seconds of audio to stream")
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--overlap", type=float, default=0.5)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no data at {args.data}", file=sys.stderr)
        return 1
    from device.learn import LogisticRegressionClassifier

    fp = AudioFeaturePrint(window_duration=args.window, overlap_factor=args.overlap, num_threads=1)
    labels = sorted(p.name for p in args.data.iterdir() if p.is_dir())
    files = {label: sorted((args.data / label).glob("*.flac")) for label in labels}

    # a small model: the windows of 5 clips per label (the clip form is the stream over the file)
    rows, names = [], []
    t = time.process_time()
    n_audio = 0.0
    for label in labels:
        for f in files[label][:5]:
            n_audio += len(load_audio(f)) / SAMPLE_RATE
            for window in fp.file_windows(f):
                rows.append(window.values)
                names.append(label)
    clip_cost = (time.process_time() - t) / n_audio
    model = LogisticRegressionClassifier(l2_penalty=1e-2).fit(Examples.of(fp.dequantize(np.stack(rows)), names))
    model.feature_scales = fp.scales

    # one long recording from clips of every label
    pieces, total = [], 0
    k = 5
    while total < args.seconds * SAMPLE_RATE:
        for label in labels:
            f = files[label][k % len(files[label])]
            x = load_audio(f)
            pieces.append(x)
            total += len(x)
        k += 1
    audio = np.concatenate(pieces)[: int(args.seconds * SAMPLE_RATE)]
    seconds = len(audio) / SAMPLE_RATE

    async def chunks():
        for i in range(0, len(audio), 1600):
            yield TemporalFeature(audio[i : i + 1600], i / SAMPLE_RATE, "bench")

    # warm up (model allocation), then measure
    run(fp(chunks()), limit=2)
    items: list = []
    # the product's sound pipeline (feature print on its worker thread, classifier, events);
    # the volume gate at its floor so that every window is classified
    pipeline = sound_pipeline(SoundSettings(min_volume_db=-120.0), model, feature_print=fp, on_window=items.append)
    t0 = time.process_time()  # CPU of every thread of the process
    run(pipeline(chunks()))
    cpu = time.process_time() - t0
    rtf = cpu / seconds

    # where the time goes (same audio, stage by stage)
    block = audio[: 30 * SAMPLE_RATE]
    emb = fp._speech_embedding()
    t = time.process_time()
    frontend.log_mel(block)
    t_logmel = time.process_time() - t
    t = time.process_time()
    mel = emb.mel(block)
    t_mel = time.process_time() - t
    t = time.process_time()
    emb.embed(mel, stride=fp.embedding_stride)
    t_emb = time.process_time() - t
    window_frames = frontend.log_mel(audio[: int(fp.window_duration * SAMPLE_RATE)])
    t = time.process_time()
    for _ in range(50):
        fp._log_mel_block(window_frames)  # log-mel statistics + modulation spectrum of one window
    t_pool = (time.process_time() - t) / 50
    feats = [it.value for it in run(fp(chunks()), limit=50)]
    t = time.process_time()
    for _ in range(20):
        for f in feats[:50]:
            model(f)
    t_cls = (time.process_time() - t) / (20 * min(50, len(feats)))

    print(f"feature print: {fp!r}")
    print(f"fingerprint {fp.fingerprint()[:12]}, {fp.dimension} int8 dimensions = {fp.dimension} bytes per window")
    print(f"streamed {seconds:.0f} s of audio in {len(items)} windows ({fp.window_duration:g} s every {fp.hop_duration:g} s), one thread")
    print(f"real-time factor (feature print + classification): {rtf:.4f} CPU s per s of audio (target ≤ 0.01)")
    print(
        f"  per second of audio: log-mel {1000 * t_logmel / 30:.2f} ms, speech mel {1000 * t_mel / 30:.2f} ms, "
        f"embeddings {1000 * t_emb / 30:.2f} ms; per window: log-mel statistics + modulation spectrum "
        f"{1000 * t_pool:.2f} ms, classification {1000 * t_cls:.3f} ms"
    )
    print(f"clip form (training extraction): {clip_cost:.4f} CPU s per s of audio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
