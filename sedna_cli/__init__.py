"""The ``sedna`` command: the one place that runs the control plane's parts side by side."""
