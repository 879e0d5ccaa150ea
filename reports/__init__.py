"""Turning a run folder's samples into HTML, markdown, JSON and JUnit."""
