"""A robot driver stand-in for `use_sim:=false` launch tests: what a real base and its sensors
publish (odom, a 360-ray scan with a wall 2 m ahead, a grey camera and its camera_info at 10 Hz)
and a log of the `cmd_vel` it receives, one line per command on stdout. Not a simulator: the
pose never moves. Run as a process of the launch test (`python _driver.py [--stamped] --ros-args
-r __ns:=/ns`); with --stamped it takes cmd_vel as TwistStamped, as Jazzy's diff_drive_controller
does, and logs its frame_id too."""
import math
import sys

import numpy as np
import rclpy
from geometry_msgs.msg import Twist, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, LaserScan

WIDTH, HEIGHT, RAYS = 160, 120, 360


class Driver(Node):
    def __init__(self, stamped: bool) -> None:
        super().__init__('driver_stand_in')
        self.odom = self.create_publisher(Odometry, 'odom', 10)
        self.scan = self.create_publisher(LaserScan, 'scan', 10)
        self.image = self.create_publisher(Image, 'camera/image_raw', 10)
        self.info = self.create_publisher(CameraInfo, 'camera/camera_info', 10)
        self.create_subscription(TwistStamped if stamped else Twist, 'cmd_vel', self.on_cmd, 10)
        self.create_timer(0.1, self.tick)
        self.pixels = np.full((HEIGHT, WIDTH, 3), 128, np.uint8).tobytes()

    def on_cmd(self, msg) -> None:
        frame = ''
        if isinstance(msg, TwistStamped):
            frame, msg = f' frame={msg.header.frame_id}', msg.twist
        print(f'cmd_vel {msg.linear.x:.3f} {msg.angular.z:.3f}{frame}', flush=True)

    def tick(self) -> None:
        stamp = self.get_clock().now().to_msg()
        odom = Odometry()
        odom.header.stamp, odom.header.frame_id, odom.child_frame_id = stamp, 'odom', 'base_link'
        odom.pose.pose.orientation.w = 1.0
        self.odom.publish(odom)
        scan = LaserScan(angle_min=-math.pi, angle_max=math.pi, range_min=0.05, range_max=8.0,
                         angle_increment=2 * math.pi / RAYS)
        scan.header.stamp, scan.header.frame_id = stamp, 'laser'
        scan.ranges = [2.0] * RAYS
        self.scan.publish(scan)
        image = Image(height=HEIGHT, width=WIDTH, encoding='bgr8', step=WIDTH * 3,
                      data=self.pixels)
        image.header.stamp, image.header.frame_id = stamp, 'camera'
        self.image.publish(image)
        info = CameraInfo(height=HEIGHT, width=WIDTH, distortion_model='plumb_bob')
        info.header = image.header
        f = WIDTH / 2
        info.k = [f, 0.0, WIDTH / 2, 0.0, f, HEIGHT / 2, 0.0, 0.0, 1.0]
        self.info.publish(info)


def main() -> int:
    stamped = '--stamped' in sys.argv
    rclpy.init(args=[a for a in sys.argv if a != '--stamped'])
    node = Driver(stamped)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
