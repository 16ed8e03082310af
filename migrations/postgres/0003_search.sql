-- Search (docs/postgres.md, "Search"): the words of every step's and decision's text, as a
-- `tsvector` in a GIN index, so that `reasonkit-audit search` need not read every row.
--
-- Written in bulk, apart from the writes (a GIN index updated by each insert costs the
-- writes 2-3x): `reasonkit-audit index` indexes the rows of the chain's next entries past
-- the mark `search_indexed`, a chunk at a time, one indexer at a time. The rows of the
-- entries past the mark are the tail, which search reads itself, so it finds every
-- committed row. Derived data: not chained, and rebuilt from the rows by emptying the table
-- and resetting the mark to 0.
CREATE TABLE search_terms (
    table_name text NOT NULL,
    row_id text NOT NULL,
    session_id text NOT NULL,
    terms tsvector NOT NULL,
    PRIMARY KEY (table_name, row_id)
);
CREATE INDEX idx_search_terms ON search_terms USING gin (terms);
CREATE INDEX idx_search_terms_session ON search_terms (session_id);
INSERT INTO audit_meta (key, value) VALUES ('search_indexed', '0');
