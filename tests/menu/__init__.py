"""Tests of the training menu: schedules, losses, class weights, augmentations."""
