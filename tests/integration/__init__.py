"""Tests of the whole checkout: the shipped plugins together, the README's commands, wheels, pretrained files.

The core's own tests (tests/, beside this folder) need only the zoo-tiny fixture plugin; each plugin's tests
live in its own folder (plugins/NAME/tests).
"""
