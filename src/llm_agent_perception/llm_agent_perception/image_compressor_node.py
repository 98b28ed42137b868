"""Compress camera/image_raw to camera/image_raw/compressed, compressed_image_transport's way,
and to a video stream on camera/image_raw/ffmpeg, ffmpeg_image_transport's way (encoded only
while someone subscribes to it)."""
from __future__ import annotations

import importlib
import time
from typing import Optional

from llm_agent_common.node import (
    BadInputs,
    Component,
    Diagnostics,
    GuardedNode,
    LatestWorker,
    LazyInput,
    Param,
    Params,
    StreamInput,
    StreamStats,
    run_component,
    sensor_pub_qos,
    sensor_qos,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CompressedImage, Image

from . import image_codec, video_codec
from .budget import BudgetController

X26X_PRESETS = ('ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow',
                'slower', 'veryslow')


def _preset_problem(value: str) -> str:
    if value in X26X_PRESETS or (value.isdigit() and 0 <= int(value) <= 13):
        return ''
    return f'video_preset must be an x264/x265 preset {list(X26X_PRESETS)} or an SVT-AV1 0..13'

PARAMS = [
    Param('format', 'jpeg', 'Compression: jpeg (lossy, small) or png (lossless)',
          allowed=image_codec.FORMATS),
    Param('jpeg_quality', 95, 'JPEG quality 1..100 (the stock plugin default is 95)',
          range=(1, 100)),
    Param('png_level', 3, 'PNG compression level 0..9 (higher: smaller, slower)', range=(0, 9)),
    Param('downscale', 1.0, 'Resize factor applied before encoding (1.0 = full size)',
          range=(0.05, 1.0)),
    Param('roi_x', 0, 'Region of interest: left column in pixels', range=(0, 100000)),
    Param('roi_y', 0, 'Region of interest: top row in pixels', range=(0, 100000)),
    Param('roi_width', 0, 'Region of interest width in pixels (0 = to the right edge)',
          range=(0, 100000)),
    Param('roi_height', 0, 'Region of interest height in pixels (0 = to the bottom edge)',
          range=(0, 100000)),
    Param('budget_bytes_per_s', 0, 'Bandwidth budget in bytes per second for jpeg; the quality '
          'is chosen frame by frame to hold it (0 = off: jpeg_quality is used)',
          range=(0, 1_000_000_000)),
    Param('budget_min_quality', 10, 'Lowest JPEG quality the budget mode may choose',
          range=(1, 100)),
    Param('budget_max_quality', 95, 'Highest JPEG quality the budget mode may choose',
          range=(1, 100)),
    Param('lazy', True, 'Read the camera only while someone subscribes to an output (as '
          "image_transport's publishers encode only for subscribers); false = always",
          read_only=True),
    Param('video_codec', 'h264', 'Codec of the video stream on camera/image_raw/ffmpeg '
          '(ffmpeg_image_transport_msgs/FFMPEGPacket), encoded only while someone subscribes; '
          'off = no video publisher', allowed=tuple(video_codec.CODECS) + ('off',),
          read_only=True),
    Param('video_preset', 'veryfast', 'Encoder speed preset: x264/x265 names, SVT-AV1 0..13 '
          '(slower = fewer bytes, more CPU)', check=_preset_problem),
    Param('video_crf', 20, 'Constant rate factor: lower = better and bigger (used when '
          'video_bitrate_kbps is 0)', range=(0, 63)),
    Param('video_bitrate_kbps', 0, 'Target bitrate in kbit/s instead of a CRF (0 = CRF)',
          range=(0, 1_000_000)),
    Param('video_max_kbps', 0, 'Bandwidth budget: the stream never exceeds this many kbit/s '
          '(0 = no cap)', range=(0, 1_000_000)),
    Param('video_gop', 30, 'Frames between keyframes (a new subscriber gets one at once)',
          range=(1, 600)),
    Param('video_zerolatency', True, 'Zero-latency tuning: one packet out per frame in, no '
          'lookahead (no frame of encoder delay)'),
]


def video_settings(values) -> video_codec.VideoSettings:
    """The encoder settings the node's parameters describe."""
    return video_codec.VideoSettings(
        codec=values['video_codec'], preset=values['video_preset'], crf=values['video_crf'],
        bitrate_kbps=values['video_bitrate_kbps'], max_kbps=values['video_max_kbps'],
        gop=values['video_gop'], zerolatency=values['video_zerolatency'])


FFMPEG_PACKET = ('ffmpeg_image_transport_msgs', 'FFMPEGPacket')
COMPRESSED_VIDEO = ('foxglove_msgs', 'CompressedVideo')


def optional_message(package: str, name: str):
    """The message class `package/msg/name`, or None where the package is not installed."""
    try:
        return getattr(importlib.import_module(f'{package}.msg'), name)
    except (ImportError, AttributeError):
        return None


class ImageCompressor(GuardedNode):
    """Take the newest raw frame on the input's thread, encode it there, publish it."""

    def __init__(self, **kwargs) -> None:
        super().__init__('image_compressor', **kwargs)
        self.params = Params(self, PARAMS, on_change=self._on_params)
        self.bad = BadInputs(self)
        self.stats = StreamStats()
        self.video_stats = StreamStats(work='encode')
        self._budget: Optional[BudgetController] = None
        self._last_out_t: Optional[float] = None
        self._reset_budget(self.params.values)
        self._pub = self.create_publisher(CompressedImage, 'camera/image_raw/compressed',
                                          sensor_pub_qos(5))
        self._video_pub = self._video_worker = None
        self._streamer = video_codec.VideoStreamer(video_settings(self.params.values))
        # Settings for the video worker to take up: the streamer belongs to its thread.
        self._video_restart: Optional[video_codec.VideoSettings] = None
        self._start_video()
        def subscribe():
            # Frames resume after a pause: the stream starts again, on a keyframe.
            self._video_restart = video_settings(self.params.values)
            # Frames are taken and JPEG-encoded on the input's own thread (StreamInput).
            return StreamInput(self, Image, 'camera/image_raw', self._on_image, sensor_qos(1),
                               'image_compressor_input')
        if self.params['lazy']:
            self.input = LazyInput(self, lambda: [p for p in (self._pub, self._video_pub) if p],
                                   subscribe, callback_group=MutuallyExclusiveCallbackGroup())
        else:
            self.input = subscribe()
        self.diagnostics = Diagnostics(self, self._figures, self.bad,
                                       callback_group=MutuallyExclusiveCallbackGroup())

    def _start_video(self) -> None:
        if self.params['video_codec'] == 'off':
            return
        packet = optional_message(*FFMPEG_PACKET)
        if packet is None:
            self.get_logger().warn(
                'video stream off: ffmpeg_image_transport_msgs is not installed (on a robot: '
                'rosdep install, or apt install ros-jazzy-ffmpeg-image-transport-msgs)')
            return
        try:
            import av  # noqa: F401 - PyAV, the encoder
        except ImportError:
            self.get_logger().warn('video stream off: PyAV (pip install av) is not installed')
            return
        self._packet_cls = packet
        self._video_pub = self.create_publisher(packet, 'camera/image_raw/ffmpeg',
                                                sensor_pub_qos(5))
        self._video_worker = LatestWorker(
            self._encode_video, 'image_compressor_video',
            on_error=lambda e: self.bad.report('video_error', repr(e)))

    def _on_params(self, values) -> None:
        self._reset_budget(values)
        settings = video_settings(values)
        if settings != self._streamer.settings:
            self._video_restart = settings   # the next frame starts a new stream with them

    def _reset_budget(self, values) -> None:
        budget = int(values['budget_bytes_per_s'])
        lo, hi = int(values['budget_min_quality']), int(values['budget_max_quality'])
        if budget > 0:
            self._budget = BudgetController(budget, min(lo, hi), max(lo, hi),
                                            initial_quality=min(max(75, lo), hi))
        else:
            self._budget = None

    def _figures(self):
        kv = self.stats.key_values()
        kv['jpeg_quality_now'] = str(self._budget.quality if self._budget else
                                     self.params['jpeg_quality'])
        if self._video_pub is not None:
            kv.update({f'video_{k}': v for k, v in self.video_stats.key_values().items()
                       if not k.startswith('compression')})
            kv['video_frames_dropped'] = str(self._video_worker.dropped)
            kv['video_keyframes_forced'] = str(self._streamer.keyframes_forced)
            kv['video_encoding'] = str(self._streamer.active)
        return kv

    def _on_image(self, msg: Image) -> None:
        self.stats.rate_in.add(len(msg.data))
        if not self.params['lazy'] or self._pub.get_subscription_count():
            try:
                self._encode(msg)
            except Exception as exc:  # noqa: BLE001 - a frame OpenCV cannot encode: counted
                self.bad.report('encode_error', repr(exc))
        if self._video_pub is not None:
            readers = self._video_pub.get_subscription_count()
            if readers or self._streamer.active:   # the last reader gone: one call to stop
                self._video_worker.submit((msg, readers))

    def _frame(self, msg: Image):
        """The frame as an array, or None (counted and logged) when the message is malformed."""
        try:
            return image_codec.image_to_array(msg.encoding, msg.width, msg.height, msg.step,
                                              msg.data, msg.is_bigendian)
        except image_codec.BadInput as exc:
            self.bad.report('image', str(exc))
            return None

    def _encode_video(self, item) -> None:
        msg, readers = item
        restart, self._video_restart = self._video_restart, None
        if restart is not None:
            self._streamer.configure(restart)
        img = self._frame(msg)
        if img is None:
            return
        t0 = time.perf_counter()
        bgr = image_codec.to_bgr8(img, msg.encoding)
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        packets = self._streamer.frame(bgr, stamp_ns, readers)
        if not packets:
            return
        self.video_stats.rate_in.add(len(msg.data))
        self.video_stats.work_ms.add(1000.0 * (time.perf_counter() - t0))
        for p in packets:
            self._video_pub.publish(self._packet_cls(
                header=msg.header, width=msg.width, height=msg.height,
                encoding=self._streamer.encoding, pts=p.pts,
                flags=video_codec.KEY_FLAG if p.keyframe else 0, is_bigendian=False,
                data=p.data))
            self.video_stats.rate_out.add(len(p.data))

    def _encode(self, msg: Image) -> None:
        p = self.params.values
        img = self._frame(msg)
        if img is None:
            return
        t0 = time.perf_counter()
        roi = (p['roi_x'], p['roi_y'], p['roi_width'], p['roi_height'])
        use_roi = any(roi)
        img = image_codec.crop_and_scale(img, roi if use_roi else None, p['downscale'])
        budget = self._budget if p['format'] == 'jpeg' else None
        quality = budget.quality if budget is not None else p['jpeg_quality']
        enc = image_codec.encode(img, msg.encoding, p['format'], quality, p['png_level'])
        self.stats.work_ms.add(1000.0 * (time.perf_counter() - t0))
        if budget is not None:
            now = time.monotonic()
            dt = 1.0 / 30.0 if self._last_out_t is None else now - self._last_out_t
            self._last_out_t = now
            budget.update(len(enc.data), dt)
        out = CompressedImage(header=msg.header, format=enc.format, data=enc.data)
        self._pub.publish(out)
        self.stats.rate_out.add(len(enc.data))

    def close(self) -> None:
        """Stop the input and the video encoder threads."""
        self.input.close()
        if self._video_worker is not None:
            self._video_worker.stop()


COMPONENT = Component(ImageCompressor)


def main(args=None) -> int:
    """Run the image_compressor node until Ctrl-C."""
    return run_component(COMPONENT, args)


if __name__ == '__main__':
    raise SystemExit(main())
