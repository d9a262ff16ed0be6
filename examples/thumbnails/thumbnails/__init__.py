"""Thumbnail planning for an image store: an example package of taskrelay tasks.

Importing the package does nothing; ``thumbnails.jobs`` declares the tasks, and
``taskrelay up --tasks thumbnails.jobs`` loads it in every role.
"""
