"""Put each package's console scripts where `ros2 run` and launch_ros look: lib/<package>/.

colcon does this when it installs an ament_python package (setup.cfg's script_dir); a pip
editable install puts the scripts in bin/ only. Usage: python link_executables.py PREFIX PKG...
"""
import os
import sys
from importlib.metadata import PackageNotFoundError, distribution


def link(prefix: str, package: str) -> int:
    try:
        scripts = [e for e in distribution(package).entry_points if e.group == 'console_scripts']
    except PackageNotFoundError:
        sys.exit(f'{package} is not installed in {sys.prefix}')
    folder = os.path.join(prefix, 'lib', package)
    os.makedirs(folder, exist_ok=True)
    for entry in scripts:
        target = os.path.join(prefix, 'bin', entry.name)
        if not os.path.isfile(target):
            sys.exit(f'{package}: {target} is missing (is the package installed?)')
        path = os.path.join(folder, entry.name)
        if os.path.lexists(path):
            os.remove(path)
        os.symlink(target, path)
    return len(scripts)


if __name__ == '__main__':
    prefix, packages = os.path.abspath(sys.argv[1]), sys.argv[2:]
    count = sum(link(prefix, p) for p in packages)
    print(f'{count} executables linked into {prefix}/lib/<package>/')
