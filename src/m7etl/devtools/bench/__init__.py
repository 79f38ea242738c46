"""The benchmark behind ``make bench``: m7etl beside DuckDB and pyarrow, on every dataset.

Each contender runs in a fresh interpreter on the same generated file, so its CPU time and
peak memory are its own. The modules, lowest first: :mod:`.cases` (the generated files
and what they must give), :mod:`.gold_sql` (DuckDB's gold derived from the contract),
:mod:`.contenders` (what each child process runs), :mod:`.checks` (nothing lost: the
counts, and m7etl's gold against DuckDB's), :mod:`.runner` (processes, medians, tables).
"""
