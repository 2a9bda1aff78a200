"""The pg_catalog and information_schema tables the catalog holds, as SQLite tables.

Each table lists the columns clients read (psql 15, SQLAlchemy 2's PostgreSQL dialect, DBeaver,
Grafana), in PostgreSQL's order, each with a one-letter kind: I integer (OIDs too), T text,
R real, B boolean (stored 0/1, read back as bool), A array (stored as JSON, read back as a list),
V int2vector/oidvector (stored as JSON, read back as PostgreSQL's text form '1 2': clients do
not decode these types, SQLAlchemy splits the text).
Tables a client reads but queryleaf has nothing for (policies, publications, statistics
objects, inheritance...) exist and stay empty, so the client's query runs and finds nothing.
"""

from __future__ import annotations

# Declared SQLite column types: PG_BOOL, PG_TEXTARRAY and PG_TEXTVECTOR name the converters
# (sqlite3.PARSE_DECLTYPES) that turn stored values back into bools, lists and vector texts.
# sqlite3's converters are process-wide: the PG_ prefix keeps them off anyone else's columns.
SQLITE_TYPES = {
    "I": "INTEGER",
    "T": "TEXT",
    "R": "REAL",
    "B": "PG_BOOL",
    "A": "PG_TEXTARRAY",
    "V": "PG_TEXTVECTOR",
}


def _spec(text: str) -> list[tuple[str, str]]:
    return [(item.split(":")[0], item.split(":")[1]) for item in text.split()]


PG_CATALOG: dict[str, list[tuple[str, str]]] = {
    "pg_namespace": _spec("oid:I nspname:T nspowner:I nspacl:A"),
    "pg_class": _spec(
        "oid:I relname:T relnamespace:I reltype:I reloftype:I relowner:I relam:I relfilenode:I"
        " reltablespace:I relpages:I reltuples:R relallvisible:I reltoastrelid:I relhasindex:B"
        " relisshared:B relpersistence:T relkind:T relnatts:I relchecks:I relhasrules:B"
        " relhastriggers:B relhassubclass:B relrowsecurity:B relforcerowsecurity:B"
        " relispopulated:B relreplident:T relispartition:B relrewrite:I relfrozenxid:I"
        " relminmxid:I relacl:A reloptions:A relpartbound:T"
    ),
    "pg_attribute": _spec(
        "attrelid:I attname:T atttypid:I attstattarget:I attlen:I attnum:I attndims:I"
        " attcacheoff:I atttypmod:I attbyval:B attalign:T attstorage:T attcompression:T"
        " attnotnull:B atthasdef:B atthasmissing:B attidentity:T attgenerated:T attisdropped:B"
        " attislocal:B attinhcount:I attcollation:I attacl:A attoptions:A attfdwoptions:A"
    ),
    "pg_type": _spec(
        "oid:I typname:T typnamespace:I typowner:I typlen:I typbyval:B typtype:T typcategory:T"
        " typispreferred:B typisdefined:B typdelim:T typrelid:I typelem:I typarray:I"
        " typinput:T typoutput:T typreceive:T typsend:T typnotnull:B typbasetype:I typtypmod:I"
        " typndims:I typcollation:I typdefault:T"
    ),
    "pg_index": _spec(
        "indexrelid:I indrelid:I indnatts:I indnkeyatts:I indisunique:B indnullsnotdistinct:B"
        " indisprimary:B indisexclusion:B indimmediate:B indisclustered:B indisvalid:B"
        " indcheckxmin:B indisready:B indislive:B indisreplident:B indkey:V indcollation:V"
        " indclass:V indoption:V indexprs:T indpred:T"
    ),
    "pg_am": _spec("oid:I amname:T amhandler:T amtype:T"),
    "pg_database": _spec(
        "oid:I datname:T datdba:I encoding:I datlocprovider:T datistemplate:B datallowconn:B"
        " datconnlimit:I datfrozenxid:I datminmxid:I dattablespace:I datcollate:T datctype:T"
        " daticulocale:T datcollversion:T datacl:A"
    ),
    "pg_description": _spec("objoid:I classoid:I objsubid:I description:T"),
    "pg_constraint": _spec(
        "oid:I conname:T connamespace:I contype:T condeferrable:B condeferred:B convalidated:B"
        " conrelid:I contypid:I conindid:I conparentid:I confrelid:I confupdtype:T"
        " confdeltype:T confmatchtype:T conislocal:B coninhcount:I connoinherit:B conkey:A"
        " confkey:A conbin:T"
    ),
    "pg_inherits": _spec("inhrelid:I inhparent:I inhseqno:I inhdetachpending:B"),
    "pg_attrdef": _spec("oid:I adrelid:I adnum:I adbin:T"),
    "pg_collation": _spec(
        "oid:I collname:T collnamespace:I collprovider:T collencoding:I collcollate:T collctype:T"
    ),
    "pg_roles": _spec(
        "oid:I rolname:T rolsuper:B rolinherit:B rolcreaterole:B rolcreatedb:B rolcanlogin:B"
        " rolreplication:B rolconnlimit:I rolvaliduntil:T rolbypassrls:B rolconfig:A"
    ),
    "pg_auth_members": _spec("roleid:I member:I grantor:I admin_option:B"),
    "pg_settings": _spec(
        "name:T setting:T unit:T category:T short_desc:T extra_desc:T context:T vartype:T"
        " source:T min_val:T max_val:T enumvals:A boot_val:T reset_val:T pending_restart:B"
    ),
    "pg_policy": _spec(
        "oid:I polname:T polrelid:I polcmd:T polpermissive:B polroles:A polqual:T polwithcheck:T"
    ),
    "pg_statistic_ext": _spec(
        "oid:I stxrelid:I stxname:T stxnamespace:I stxowner:I stxstattarget:I stxkeys:V stxkind:A"
    ),
    "pg_publication": _spec(
        "oid:I pubname:T pubowner:I puballtables:B pubinsert:B pubupdate:B pubdelete:B"
        " pubtruncate:B pubviaroot:B"
    ),
    "pg_publication_namespace": _spec("oid:I pnpubid:I pnnspid:I"),
    "pg_publication_rel": _spec("oid:I prpubid:I prrelid:I prqual:T prattrs:A"),
    "pg_sequence": _spec(
        "seqrelid:I seqtypid:I seqstart:I seqincrement:I seqmax:I seqmin:I seqcache:I seqcycle:B"
    ),
    "pg_opclass": _spec(
        "oid:I opcmethod:I opcname:T opcnamespace:I opcowner:I opcfamily:I opcintype:I"
        " opcdefault:B opckeytype:I"
    ),
    "pg_enum": _spec("oid:I enumtypid:I enumsortorder:R enumlabel:T"),
    "pg_proc": _spec("oid:I proname:T pronamespace:I proowner:I prorettype:I prokind:T"),
    "pg_extension": _spec("oid:I extname:T extowner:I extnamespace:I extversion:T"),
    "pg_tablespace": _spec("oid:I spcname:T spcowner:I"),
    "pg_trigger": _spec("oid:I tgrelid:I tgname:T tgenabled:T tgisinternal:B"),
    "pg_rewrite": _spec("oid:I rulename:T ev_class:I ev_type:T"),
    "pg_foreign_table": _spec("ftrelid:I ftserver:I ftoptions:A"),
    "pg_partitioned_table": _spec("partrelid:I partstrat:T partnatts:I"),
}

# Views over the tables above, as PostgreSQL defines them (the columns clients read).
PG_CATALOG_VIEWS = {
    "pg_tables": """
        SELECT n.nspname AS schemaname, c.relname AS tablename,
               pg_get_userbyid(c.relowner) AS tableowner, NULL AS tablespace,
               c.relhasindex AS hasindexes, c.relhasrules AS hasrules,
               c.relhastriggers AS hastriggers, c.relrowsecurity AS rowsecurity
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p')""",
    "pg_views": """
        SELECT n.nspname AS schemaname, c.relname AS viewname,
               pg_get_userbyid(c.relowner) AS viewowner, NULL AS definition
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'v'""",
    "pg_indexes": """
        SELECT n.nspname AS schemaname, t.relname AS tablename, c.relname AS indexname,
               NULL AS tablespace, pg_get_indexdef(c.oid, 0, 1) AS indexdef
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace""",
    "pg_user": """
        SELECT rolname AS usename, oid AS usesysid, rolcreatedb AS usecreatedb,
               rolsuper AS usesuper FROM pg_roles""",
}

INFORMATION_SCHEMA: dict[str, list[tuple[str, str]]] = {
    "schemata": _spec("catalog_name:T schema_name:T schema_owner:T"),
    "tables": _spec(
        "table_catalog:T table_schema:T table_name:T table_type:T is_insertable_into:T is_typed:T"
    ),
    "views": _spec("table_catalog:T table_schema:T table_name:T view_definition:T"),
    "columns": _spec(
        "table_catalog:T table_schema:T table_name:T column_name:T ordinal_position:I"
        " column_default:T is_nullable:T data_type:T character_maximum_length:I"
        " numeric_precision:I numeric_scale:I datetime_precision:I udt_catalog:T"
        " udt_schema:T udt_name:T is_identity:T is_generated:T is_updatable:T"
    ),
}

# OIDs of the catalog tables (PostgreSQL's own), for ``'pg_class'::regclass`` and friends.
CATALOG_TABLE_OIDS = {
    "pg_type": 1247,
    "pg_attribute": 1249,
    "pg_proc": 1255,
    "pg_class": 1259,
    "pg_database": 1262,
    "pg_namespace": 2615,
    "pg_constraint": 2606,
    "pg_description": 2609,
    "pg_index": 2610,
    "pg_am": 2601,
}

CATALOG_NAMES = frozenset(PG_CATALOG) | frozenset(PG_CATALOG_VIEWS)


def ddl(schema: str, name: str, columns: list[tuple[str, str]]) -> str:
    body = ", ".join(f'"{column}" {SQLITE_TYPES[kind]}' for column, kind in columns)
    return f'CREATE TABLE {schema}."{name}" ({body})'
