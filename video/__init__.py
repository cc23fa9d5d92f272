"""Edge camera analytics (capture, motion, zones, tamper, fire/smoke, events)."""
