"""Evaluation: WritingBench-style criteria, LongBench-Write, pairwise arena, LongBench v2 transfer, reports."""
