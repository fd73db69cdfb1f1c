"""Runs a stage with the CPU split into two logical devices, as on a machine with two GPUs.

python -m tests.programs.two_logical_cpus stages.train_unet
"""

import runpy
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
runpy.run_path(sys.argv[1], run_name="__main__")
