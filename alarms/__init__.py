"""Alarm lifecycle (ISA-18.2 states), grading, the journal/outbox and workflows."""
