"""Make this folder importable so skills.yaml can name `plugin_skills_for_test:Wiggle`."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
