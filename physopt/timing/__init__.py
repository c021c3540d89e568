"""Micro-benchmarks on one timing kernel (:mod:`physopt.timing.kernel`): the HIG update per route (:mod:`.hig`), the
fluid step and network inference (:mod:`.fluid`), ZCS (:mod:`.zcs`), n-TangentProp (:mod:`.tangentprop`) and the
speed table of every optimizer (:mod:`.speed`). Each exports ``run(...) -> rows`` and a column spec ``COLUMNS`` for
:func:`physopt.bench.table.format_table`; the ``physopt`` command writes the rows with the machine and the command.
"""
