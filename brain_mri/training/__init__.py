"""Training: tf.data input pipelines, resumable fitting, devices and distribution, schedules."""
