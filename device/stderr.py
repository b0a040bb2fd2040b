"""fd 2 is one per process: whoever points it elsewhere for a moment holds this lock.

Two parts of Cadence do: the TFLite note capture (:func:`device.inference.without_delegate_note`)
and PortAudio's initialisation (``import sounddevice`` sends fd 2 to ``/dev/null`` while
it probes ALSA). Interleaved in two threads — the daemon loads the pose model while the
microphone opens — one of them saves the other's temporary target as "the original"
and restores it: the daemon's stderr then stays on ``/dev/null`` for good.
"""

from __future__ import annotations

import threading

redirect_lock = threading.Lock()
