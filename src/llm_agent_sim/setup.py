import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'llm_agent_sim'
# The suite's config/ at the repository root is the one copy of every parameter file; each
# package installs the files it reads under share/<package>/config, where nodes find them.
here = os.path.dirname(os.path.abspath(__file__))
config_root = os.path.relpath(os.path.join(here, '..', '..', 'config'), here)


def config_files(patterns):
    """Group matching config files by their install folder under share/<package>/config."""
    groups = {}
    for pattern in patterns:
        for path in sorted(glob(os.path.join(config_root, pattern))):
            sub = os.path.dirname(os.path.relpath(path, config_root))
            groups.setdefault(os.path.join('share', package_name, 'config', sub), []).append(path)
    return list(groups.items())


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        # The suite's launch files, so `ros2 launch llm_agent_sim agent.launch.py` works too;
        # installed beside share/llm_agent_sim/config, which they then take as the default.
        ('share/' + package_name + '/launch',
         sorted(glob(os.path.join(config_root, '..', 'launch', '*.launch.py')))),
    ] + config_files(['*.yaml', '*.xml', 'worlds/*.yaml']),
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='LLM agent maintainers',
    maintainer_email='maintainers@llm-agent.dev',
    description=(
        'A small built-in 2D world (walls, boxes, a coloured target, a goal) that stands '
        'in for Gazebo or a robot, and the llm-agent command that starts the graph and '
        'runs the demo.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [
            'sim_world = llm_agent_sim.sim_world_node:main',
            'llm-agent = llm_agent_sim.cli:main',
        ],
    },
)
