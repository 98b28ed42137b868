"""Camera frames as a video stream (PyAV: FFmpeg's encoders and decoders), no rclpy.

The encoder turns BGR frames into packets the way ffmpeg_image_transport publishes them (one
packet per frame, no B-frames, so no frame of encoder delay with zero-latency tuning; the
parameter sets travel in-band before each keyframe so a late reader can start there). The
decoder takes packets from any source (an FFMPEGPacket, a Foxglove CompressedVideo), waits for
a keyframe, and turns each packet into a BGR frame or a clear `BadInput`.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List, Optional, Tuple

import numpy as np

from .bounded import BadInput

_REALTIME = (os.SCHED_FIFO, os.SCHED_RR)


def _thread_policies() -> Dict[int, int]:
    policies = {}
    for name in os.listdir('/proc/self/task'):
        try:
            policies[int(name)] = os.sched_getscheduler(int(name))
        except OSError:         # the thread ended meanwhile
            pass
    return policies


def _time_share_this_thread() -> None:
    """SCHED_OTHER for the calling thread through pthread_setschedparam: glibc keeps the policy
    it last set there and gives it to every thread this one starts later (Fast DDS's, for one),
    whatever the kernel was told since."""
    import ctypes
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_ulong
    libc.pthread_setschedparam.argtypes = [ctypes.c_ulong, ctypes.c_int, ctypes.c_void_p]
    param = ctypes.c_int(0)                     # struct sched_param { int sched_priority; }
    if libc.pthread_setschedparam(libc.pthread_self(), os.SCHED_OTHER, ctypes.byref(param)):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


@contextmanager
def no_new_realtime_threads():
    """Undo any real-time scheduling a codec gives threads while it opens.

    SVT-AV1 (libsvtav1), run as root, makes the thread that opens it and the ~20 it starts
    SCHED_FIFO 99. Every process and DDS thread started from there inherits it, and a busy
    FIFO 99 thread starves the rest of the machine: DDS threads, the model, the control loop
    (CI saw whole graphs spin at 100 % and never stop). Threads that were real-time before
    stay so.
    """
    if not os.path.isdir('/proc/self/task'):    # not Linux: no such policy to undo
        yield
        return
    before = _thread_policies()
    try:
        yield
    finally:
        me = threading.get_native_id()
        for tid, policy in _thread_policies().items():
            if policy not in _REALTIME or before.get(tid) in _REALTIME:
                continue
            try:
                if tid == me:
                    _time_share_this_thread()
                else:                           # the codec's own workers
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
            except OSError:
                pass


# Our codec names -> (FFmpeg encoder, FFmpeg decoder, Foxglove CompressedVideo.format).
CODECS: Dict[str, Tuple[str, str, str]] = {
    'h264': ('libx264', 'h264', 'h264'),
    'h265': ('libx265', 'hevc', 'h265'),
    'av1': ('libsvtav1', 'libdav1d', 'av1'),
    'vp9': ('libvpx-vp9', 'vp9', 'vp9'),
}
# What ffmpeg_image_transport writes in FFMPEGPacket.encoding (the encoder's name; its decoder
# maps it to a decoder) and codec names, both accepted by the decoder.
DECODER_FOR = {name: dec for _, (enc, dec, _fx) in CODECS.items() for name in (enc,)}
DECODER_FOR.update({'h264': 'h264', 'hevc': 'hevc', 'h265': 'hevc', 'av1': 'libdav1d',
                    'vp9': 'vp9', 'h264_nvenc': 'h264', 'hevc_nvenc': 'hevc'})
KEY_FLAG = 1                        # AV_PKT_FLAG_KEY, as FFMPEGPacket.flags carries it
MAX_PIXELS = 4096 * 4096            # larger frames are refused before any decoder sees them
MAX_PACKET_BYTES = 16 << 20         # one compressed frame; a keyframe of 4K is well below
REKEY_AFTER_MS = 250                # a new reader's second keyframe (see VideoStreamer.frame)


@dataclass(frozen=True)
class VideoSettings:
    """How to encode. crf (quality, lower = better) unless bitrate_kbps > 0; max_kbps caps the
    rate in either mode (the bandwidth budget); gop = frames between keyframes."""

    codec: str = 'h264'
    preset: str = 'veryfast'
    crf: int = 20
    bitrate_kbps: int = 0
    max_kbps: int = 0
    gop: int = 30
    zerolatency: bool = True
    fps: float = 30.0

    def problem(self) -> str:
        """'' when the settings can be used, else why not."""
        if self.codec not in CODECS:
            return f'video codec {self.codec!r} is not one of {sorted(CODECS)}'
        if not 0 <= self.crf <= 63:
            return f'crf {self.crf} outside 0..63'
        if self.gop < 1 or self.bitrate_kbps < 0 or self.max_kbps < 0 or not self.fps > 0:
            return 'gop must be >= 1, bitrates >= 0 and fps > 0'
        return ''


@dataclass
class VideoPacket:
    """One encoded frame: the payload, its presentation time stamp and whether it is a keyframe."""

    data: bytes
    pts: int
    keyframe: bool


def _encoder_options(s: VideoSettings) -> Dict[str, str]:
    opts: Dict[str, str] = {}
    if s.codec in ('h264', 'h265'):
        opts['preset'] = s.preset
        if s.zerolatency:
            opts['tune'] = 'zerolatency'
        if not s.bitrate_kbps:
            opts['crf'] = str(s.crf)
        if s.codec == 'h265':
            # Parameter sets before every keyframe; quiet x265's banner on stderr.
            opts['x265-params'] = 'repeat-headers=1:log-level=error:bframes=0'
        elif s.max_kbps:
            opts['x264-params'] = f'vbv-maxrate={s.max_kbps}:vbv-bufsize={s.max_kbps}'
    elif s.codec == 'av1':
        os.environ.setdefault('SVT_LOG', '1')     # errors only: SVT-AV1 prints a banner else
        opts['preset'] = s.preset if s.preset.isdigit() else '10'
        if not s.bitrate_kbps:
            opts['crf'] = str(s.crf)
        opts['svtav1-params'] = 'pred-struct=1'   # low delay: no reordering
    elif s.codec == 'vp9':
        opts.update({'deadline': 'realtime', 'cpu-used': '8', 'lag-in-frames': '0'})
        if not s.bitrate_kbps:
            opts['crf'] = str(s.crf)
    return opts


class VideoEncoder:
    """Encode BGR frames of one size; `encode(frame, force_keyframe)` gives this frame's packets."""

    def __init__(self, width: int, height: int, settings: VideoSettings = VideoSettings()):
        import av
        why = settings.problem()
        if why:
            raise ValueError(why)
        if width < 2 or height < 2 or width * height > MAX_PIXELS:
            raise ValueError(f'frame size {width}x{height} cannot be encoded')
        self.settings = settings
        self.width, self.height = width - width % 2, height - height % 2   # 4:2:0 needs even sizes
        ctx = av.CodecContext.create(CODECS[settings.codec][0], 'w')
        ctx.width, ctx.height = self.width, self.height
        ctx.pix_fmt = 'yuv420p'
        ctx.time_base = Fraction(1, 1000)       # pts in ms
        ctx.framerate = Fraction(settings.fps).limit_denominator(1001)
        ctx.gop_size = settings.gop
        ctx.max_b_frames = 0
        if settings.bitrate_kbps:
            ctx.bit_rate = settings.bitrate_kbps * 1000
        if settings.max_kbps and settings.codec != 'h264':
            ctx.bit_rate = ctx.bit_rate or settings.max_kbps * 1000
        ctx.options = _encoder_options(settings)
        ctx.thread_count = 1        # one core: the robot's CPU belongs to the model too
        with no_new_realtime_threads():
            ctx.open()
        self._ctx = ctx
        self._frame_cls = av.VideoFrame
        self._pict_i = av.video.frame.PictureType.I
        self.frames = 0

    @property
    def codec_name(self) -> str:
        """The FFmpeg encoder's name (what FFMPEGPacket.encoding carries)."""
        return CODECS[self.settings.codec][0]

    def encode(self, bgr: np.ndarray, pts_ms: int, force_keyframe: bool = False) -> List[VideoPacket]:
        """The packets for this frame (one, with zero-latency settings); pts must increase."""
        if self._ctx is None:
            raise ValueError('the stream has ended (flush was called)')
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise ValueError(f'expected an HxWx3 uint8 BGR frame, got {bgr.shape} {bgr.dtype}')
        img = bgr[:self.height, :self.width]
        if img.shape[:2] != (self.height, self.width):
            raise ValueError(f'frame {bgr.shape[1]}x{bgr.shape[0]} is not the stream\'s '
                             f'{self.width}x{self.height}')
        frame = self._frame_cls.from_ndarray(np.ascontiguousarray(img), format='bgr24')
        frame.pts = int(pts_ms)
        if force_keyframe or self.frames == 0:
            frame.pict_type = self._pict_i
        self.frames += 1
        return [VideoPacket(bytes(p), int(p.pts if p.pts is not None else pts_ms), p.is_keyframe)
                for p in self._ctx.encode(frame)]

    def flush(self) -> List[VideoPacket]:
        """End the stream: the packets still inside the encoder (none with zero latency)."""
        if self._ctx is None:
            return []
        ctx, self._ctx = self._ctx, None
        return [VideoPacket(bytes(p), int(p.pts or 0), p.is_keyframe) for p in ctx.encode(None)]


def keyframe_in(encoding: str, data: bytes) -> bool:
    """Whether an H.264 or H.265 Annex B access unit holds a random access point (IDR, or
    H.265 IRAP pictures), for a format that does not flag keyframes (Foxglove's
    CompressedVideo). Other codecs: True (the decoder then says whether it can start there)."""
    decoder = DECODER_FOR.get(encoding.strip().lower())
    if decoder not in ('h264', 'hevc'):
        return True
    data = bytes(data)
    i = data.find(b'\x00\x00\x01')
    while i != -1 and i + 3 < len(data):
        header = data[i + 3]
        if decoder == 'h264' and header & 0x1F == 5:            # IDR slice
            return True
        if decoder == 'hevc' and 16 <= (header >> 1) & 0x3F <= 23:   # BLA, IDR, CRA
            return True
        i = data.find(b'\x00\x00\x01', i + 3)
    return False


class VideoDecoder:
    """Decode one stream's packets to BGR frames; every problem is a `BadInput`.

    A reader that joins late (or after a corrupt packet) waits for the next keyframe; packets
    before it are refused as 'waiting for a keyframe'. A packet whose pts is not after the last
    decoded one is refused (out of order or repeated) without touching the decoder.
    """

    def __init__(self, encoding: str, max_pixels: int = MAX_PIXELS):
        import av
        name = DECODER_FOR.get(encoding.strip().lower())
        if name is None:
            raise BadInput(f'unknown video encoding {encoding!r}; known: {sorted(DECODER_FOR)}')
        self.encoding = encoding
        self.max_pixels = max_pixels
        self._av = av
        self._ctx = av.CodecContext.create(name, 'r')
        self._ctx.thread_count = 1
        # FFmpeg checks every frame size the bitstream declares against this before it
        # allocates: a forged parameter set cannot make it allocate gigabytes.
        self._ctx.options = {'max_pixels': str(int(max_pixels))}
        self._synced = False
        self._last_pts: Optional[int] = None
        self.decoded = 0
        self.refused = 0

    def _refuse(self, why: str, resync: bool = False) -> BadInput:
        self.refused += 1
        if resync:
            self._synced = False
        return BadInput(why)

    def decode(self, data: bytes, pts: int, keyframe: bool, width: int = 0,
               height: int = 0) -> Optional[np.ndarray]:
        """One packet -> the BGR frame it completes (None if it completes none yet)."""
        if not data:
            raise self._refuse('empty video packet')
        if len(data) > MAX_PACKET_BYTES:
            raise self._refuse(f'video packet of {len(data)} bytes (at most {MAX_PACKET_BYTES})')
        if width * height > self.max_pixels or width < 0 or height < 0:
            raise self._refuse(f'video frame {width}x{height} declared: too large')
        if not self._synced:
            if not keyframe:
                raise self._refuse('waiting for a keyframe')
            self._synced = True
        elif self._last_pts is not None and pts <= self._last_pts:
            raise self._refuse(f'packet pts {pts} not after {self._last_pts}: out of order')
        packet = self._av.Packet(bytes(data))
        packet.pts = int(pts)
        try:
            frames = self._ctx.decode(packet)
        except (self._av.error.FFmpegError, ValueError) as exc:
            raise self._refuse(f'corrupt video packet ({type(exc).__name__}: {exc})',
                               resync=True) from None
        self._last_pts = int(pts)
        if not frames:
            return None
        frame = frames[-1]
        if frame.width * frame.height > self.max_pixels or \
                (width and height and (frame.width, frame.height) != (width, height)
                 and (frame.width, frame.height) != (width - width % 2, height - height % 2)):
            raise self._refuse(f'decoded {frame.width}x{frame.height}, declared {width}x{height}',
                               resync=True)
        self.decoded += 1
        return frame.to_ndarray(format='bgr24')


class VideoStreamer:
    """The publishing side's policy, apart from ROS: encode only while someone reads, start
    every new reader on a keyframe (and one more REKEY_AFTER_MS later, for a reader that
    matched after the first), restart the encoder when settings or the frame size change.

    `frame(bgr, stamp_ns, readers)` returns the packets to publish (none with no reader). pts
    are milliseconds from the stream's first frame, forced to increase (a camera whose clock
    steps back, a sim reset, still gives a valid stream).
    """

    def __init__(self, settings: VideoSettings = VideoSettings()):
        self.settings = settings
        self._encoder: Optional[VideoEncoder] = None
        self._readers = 0
        self._t0_ns = 0
        self._last_pts = -1
        self._rekey_at: Optional[int] = None
        self.keyframes_forced = 0

    def configure(self, settings: VideoSettings) -> None:
        """New settings: the next frame starts a new stream (a keyframe) with them."""
        why = settings.problem()
        if why:
            raise ValueError(why)
        self.settings = settings
        self._drop_encoder()

    def _drop_encoder(self) -> None:
        if self._encoder is not None:
            self._encoder.flush()     # ends the stream (SVT-AV1 complains when it is not ended)
            self._encoder = None

    @property
    def active(self) -> bool:
        return self._encoder is not None

    @property
    def encoding(self) -> str:
        return CODECS[self.settings.codec][0]

    def frame(self, bgr: np.ndarray, stamp_ns: int, readers: int) -> List[VideoPacket]:
        if readers <= 0:
            self._drop_encoder()                     # nobody reads: no encoding at all
            self._readers = 0
            return []
        h, w = bgr.shape[:2]
        enc = self._encoder
        if enc is None or (enc.width, enc.height) != (w - w % 2, h - h % 2):
            self._drop_encoder()
            enc = self._encoder = VideoEncoder(w, h, self.settings)
            self._t0_ns, self._last_pts = stamp_ns, -1
        pts = max(self._last_pts + 1, (stamp_ns - self._t0_ns) // 1_000_000)
        self._last_pts = pts
        force = readers > self._readers and enc.frames > 0
        if readers > self._readers:
            # The publisher sees a match before the reader does; a packet sent in between is
            # lost to it. A second keyframe a little later is the one such a reader starts on.
            self._rekey_at = pts + REKEY_AFTER_MS
        elif self._rekey_at is not None and pts >= self._rekey_at:
            force, self._rekey_at = True, None
        self.keyframes_forced += int(force)
        self._readers = readers
        return enc.encode(bgr, pts, force_keyframe=force)
