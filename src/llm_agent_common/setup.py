from setuptools import find_packages, setup

package_name = 'llm_agent_common'

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
        'What every package of the suite shares: the skill catalogue and its validation, '
        "the scenario's feature names, angle and statistics helpers, and the node toolkit "
        '(one parameter mechanism, diagnostics, QoS profiles, run_node with clean '
        'shutdown).'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [],
    },
)
