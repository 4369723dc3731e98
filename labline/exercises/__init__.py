"""Exercises: student templates built from solution notebooks, checked in sync, and graded.

One source per exercise (`solutions/NN_name.ipynb`); `template` turns it into the student's
notebook, `checking` keeps the pair honest, `grading` scores a student's work under a time
limit (`execution`). See docs/exercises.md for the marker syntax.
"""
