from setuptools import find_packages, setup

package_name = 'llm_agent_sim'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='LLM agent maintainers',
    maintainer_email='maintainers@llm-agent.dev',
    description=(
        'A small built-in 2D world (walls, boxes, a coloured target, a goal) with camera, '
        'depth, scan and odometry that stands in for Gazebo or a robot.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [
            'sim_world = llm_agent_sim.executables:sim_world',
        ],
    },
)
