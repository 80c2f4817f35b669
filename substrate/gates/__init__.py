"""The bounded gate protocol for operators: ``client`` (importable calls), ``cli`` (the command)."""
