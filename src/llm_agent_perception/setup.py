import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'llm_agent_perception'
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
    ] + config_files(['perception.yaml']),
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='LLM agent maintainers',
    maintainer_email='maintainers@llm-agent.dev',
    description=(
        'Compressed sensor topics readable by ROS image_transport plugins, scan '
        'preprocessing, quantized arrays and the compact Observation of named features.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [
            'image_compressor = llm_agent_perception.image_compressor_node:main',
            'image_decompressor = llm_agent_perception.image_decompressor_node:main',
            'depth_compressor = llm_agent_perception.depth_compressor_node:main',
            'scan_filter = llm_agent_perception.scan_filter_node:main',
            'observer = llm_agent_perception.observer_node:main',
        ],
    },
)
