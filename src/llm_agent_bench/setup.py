from setuptools import find_packages, setup

package_name = 'llm_agent_bench'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={'llm_agent_bench': ['data/*.yaml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='LLM agent maintainers',
    maintainer_email='maintainers@llm-agent.dev',
    description=(
        'The benchmark report of llm-agent bench: compression, decision latency, model '
        'compression, closed loop, resources and scaling, each as ratios measured in one '
        'run.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [],
    },
)
