from setuptools import find_packages, setup

package_name = 'llm_agent_actuation'

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
        'Asynchronous ROS 2 action server running skills with feedback, cancel, pre- '
        'emption, parallel resources and a safety guard independent of the brain.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [
            'skill_server = llm_agent_actuation.executables:skill_server',
        ],
    },
)
