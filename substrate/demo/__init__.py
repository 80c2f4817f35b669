"""What ``make demo`` shows a newcomer (``substrate report``)."""
