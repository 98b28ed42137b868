import os
from glob import glob

from setuptools import find_packages, setup

package_name = 'llm_agent_bringup'

# This package owns the suite's launch/ and config/ at the repository root (where the user's
# design card keeps them) and installs them under share/llm_agent_bringup, where every node,
# launch file and llm-agent command finds them. No other package reads files outside its folder.
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.relpath(os.path.join(here, '..', '..'), here)


def tree(folder):
    """(install folder, files) pairs for every file under root/folder, keeping sub-folders."""
    groups = {}
    for path in sorted(glob(os.path.join(root, folder, '**', '*'), recursive=True)):
        if os.path.isfile(path):
            sub = os.path.dirname(os.path.relpath(path, root))
            groups.setdefault(os.path.join('share', package_name, sub), []).append(path)
    return list(groups.items())


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ] + tree('launch') + tree('config'),
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='LLM agent maintainers',
    maintainer_email='maintainers@llm-agent.dev',
    description=(
        "The robot's entry point: owns the suite's launch/ and config/ folders, the node "
        'graph (graph.yaml) and the process launcher behind llm-agent up.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [
            'agent_container = llm_agent_bringup.executables:agent_container',
        ],
    },
)
