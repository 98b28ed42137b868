from setuptools import find_packages, setup

package_name = 'llm_agent_brain'

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
        'The decision node: safety rules, a decision tree distilled from the LLM, exact '
        'and semantic caches, and a 4-bit LLM (transformers + bitsandbytes) or a remote '
        'OpenAI-compatible backend.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [
            'decision_node = llm_agent_brain.executables:decision_node',
        ],
    },
)
