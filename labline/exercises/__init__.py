"""Exercises: student templates built from solution notebooks, checked in sync, handed out, and graded.

One source per exercise (`solutions/NN_name.ipynb`); `template` turns it into the student's
notebook, `checking` keeps the pair honest, `release` writes what students get (no solutions),
`workcopy` gives a student their own copy to work in, `grading` scores a student's work under a
time limit (`execution`), with checks that say expected and found (`explained`, `plain`). See
docs/exercises.md for the marker syntax.
"""
