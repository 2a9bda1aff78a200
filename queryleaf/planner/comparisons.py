"""The six SQL comparison operators: their MongoDB operator (the same name in aggregation
expressions and in query filters), the operator with the operands swapped, and the complement
(NOT (a op b) is a complement(op) b for values that are not NULL)."""

OPERATOR = {"=": "$eq", "<>": "$ne", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
FLIPPED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
COMPLEMENT = {"=": "<>", "<>": "=", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
