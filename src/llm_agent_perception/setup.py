from setuptools import find_packages, setup

package_name = 'llm_agent_perception'

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
        'Compressed sensor topics readable by ROS image_transport plugins, scan '
        'preprocessing, quantized arrays and the compact Observation of named features.'
    ),
    license='Apache-2.0',
    extras_require={'test': ['pytest', 'hypothesis']},
    entry_points={
        'console_scripts': [
            'image_compressor = llm_agent_perception.executables:image_compressor',
            'image_decompressor = llm_agent_perception.executables:image_decompressor',
            'depth_compressor = llm_agent_perception.executables:depth_compressor',
            'scan_filter = llm_agent_perception.executables:scan_filter',
            'observer = llm_agent_perception.executables:observer',
            'video_decoder = llm_agent_perception.executables:video_decoder',
        ],
    },
)
