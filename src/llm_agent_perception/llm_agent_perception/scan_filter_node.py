"""Clean scan into scan/filtered, and publish scan/compressed (quantized ranges) when enabled."""
from __future__ import annotations

import array
import time

import numpy as np
from llm_agent_common.node import (
    BadInputs,
    Component,
    Diagnostics,
    GuardedNode,
    Param,
    Params,
    StreamInput,
    StreamStats,
    run_component,
    sensor_pub_qos,
    sensor_qos,
)
from sensor_msgs.msg import LaserScan

from llm_agent_interfaces.msg import CompressedArray, CompressedScan

from . import quantize
from .image_codec import BadInput
from .scan_processing import ScanMeta, filter_scan


def _odd(v) -> str:
    return '' if int(v) % 2 == 1 else f'median_window must be odd, got {v}'


PARAMS = [
    Param('median_window', 5, 'Median filter width in beams (odd; 1 = off)', range=(1, 31),
          check=_odd),
    Param('downsample', 2, 'Keep one beam in N (the nearest range of each group of N)',
          range=(1, 32)),
    Param('nan_as_clear', True, 'A NaN beam with no valid neighbour becomes range_max (true) or '
          'range_min (false)'),
    Param('publish_compressed', True, 'Also publish scan/compressed (CompressedScan)'),
    Param('compressed_codec', 'zstd', 'Entropy coder of scan/compressed',
          allowed=quantize.CODECS),
    Param('compressed_max_error_m', 0.005, 'Largest range error of scan/compressed in metres '
          '(quantization step = twice this)', range=(0.0001, 1.0)),
]


def to_compressed_array(packed: quantize.Packed, header) -> CompressedArray:
    """Fill llm_agent_interfaces/CompressedArray from a Packed array."""
    return CompressedArray(header=header, dtype=packed.dtype, shape=list(packed.shape),
                           quantized_dtype=packed.quantized_dtype, scale=packed.scale,
                           zero_point=packed.zero_point, codec=packed.codec, data=packed.data)


def from_compressed_array(msg: CompressedArray) -> np.ndarray:
    """Decode llm_agent_interfaces/CompressedArray back to an array (for consumers)."""
    return quantize.unpack(quantize.Packed(
        dtype=msg.dtype, shape=tuple(int(s) for s in msg.shape),
        quantized_dtype=msg.quantized_dtype, scale=msg.scale, zero_point=msg.zero_point,
        codec=msg.codec, data=bytes(msg.data)))


class ScanFilter(GuardedNode):
    """Filter each scan in the subscription callback (cheap numpy work, no worker needed)."""

    def __init__(self, **kwargs) -> None:
        super().__init__('scan_filter', **kwargs)
        self.params = Params(self, PARAMS)
        self.bad = BadInputs(self)
        self.stats = StreamStats(work='filter')
        self.compressed_stats = StreamStats()
        self.nonfinite_beams = 0
        self._pub = self.create_publisher(LaserScan, 'scan/filtered', sensor_pub_qos(5))
        self._cpub = self.create_publisher(CompressedScan, 'scan/compressed', sensor_pub_qos(5))
        # Scans are taken and filtered on the input's own thread (StreamInput).
        self.input = StreamInput(self, LaserScan, 'scan', self._on_scan, sensor_qos(1),
                                 'scan_filter_input')
        self.diagnostics = Diagnostics(self, self._figures, self.bad)

    def _figures(self):
        kv = self.stats.key_values()
        comp = self.compressed_stats.key_values()
        kv['compressed_bytes_out_total'] = comp['bytes_out_total']
        kv['compressed_ratio'] = comp['compression_ratio']
        kv['compress_time_p50_ms'] = comp['encode_time_p50_ms']
        kv['compress_time_p95_ms'] = comp['encode_time_p95_ms']
        kv['nonfinite_beams_in'] = str(self.nonfinite_beams)
        return kv

    def _on_scan(self, msg: LaserScan) -> None:
        p = self.params.values
        self.stats.rate_in.add(4 * len(msg.ranges))
        t0 = time.perf_counter()
        meta = ScanMeta(msg.angle_min, msg.angle_max, msg.angle_increment, msg.range_min,
                        msg.range_max)
        try:
            result = filter_scan(np.asarray(msg.ranges, np.float32), meta, p['median_window'],
                                 p['downsample'], p['nan_as_clear'])
        except BadInput as exc:
            self.bad.report('scan', str(exc))
            return
        self.stats.work_ms.add(1000.0 * (time.perf_counter() - t0))
        self.nonfinite_beams += result.nonfinite_in
        m = result.meta
        out = LaserScan(header=msg.header, angle_min=m.angle_min, angle_max=m.angle_max,
                        angle_increment=m.angle_increment,
                        time_increment=msg.time_increment * p['downsample'],
                        scan_time=msg.scan_time, range_min=m.range_min, range_max=m.range_max,
                        ranges=array.array('f', result.ranges.astype('<f4').tobytes()))
        self._pub.publish(out)
        self.stats.rate_out.add(4 * result.ranges.size)
        if p['publish_compressed']:
            t1 = time.perf_counter()
            qp = quantize.params_for_range(m.range_min, m.range_max, p['compressed_max_error_m'])
            packed = quantize.pack(result.ranges, qp, p['compressed_codec'])
            cmsg = CompressedScan(header=msg.header, angle_min=m.angle_min,
                                  angle_max=m.angle_max, angle_increment=m.angle_increment,
                                  time_increment=out.time_increment, scan_time=msg.scan_time,
                                  range_min=m.range_min, range_max=m.range_max,
                                  ranges=to_compressed_array(packed, msg.header))
            self._cpub.publish(cmsg)
            self.compressed_stats.work_ms.add(1000.0 * (time.perf_counter() - t1))
            self.compressed_stats.rate_in.add(4 * result.ranges.size)
            self.compressed_stats.rate_out.add(len(packed.data))

    def close(self) -> None:
        """Stop the input's thread."""
        self.input.close()


COMPONENT = Component(ScanFilter)


def main(args=None) -> int:
    """Run the scan_filter node until Ctrl-C."""
    return run_component(COMPONENT, args)


if __name__ == '__main__':
    raise SystemExit(main())
