-- The Postgres roles of Pulse. The service connects as a role that owns nothing and can only
-- read and write its tables; migrations run as the owner role:
--   pulse_owner  owns the database and everything the migrations create
--                (PULSE_MIGRATE_DATABASE_URL); not a superuser
--   pulse_app    the service (DATABASE_URL); `pulsed migrate` grants it SELECT, INSERT,
--                UPDATE and DELETE on the tables, and nothing else
-- Run by a superuser connected to the service's database, with psql 15 or later:
--   POSTGRES_OWNER_PASSWORD=... POSTGRES_APP_PASSWORD=... psql -d pulse -f init-roles.sql
-- docker-compose.prod.yml mounts it into /docker-entrypoint-initdb.d (first start of an empty
-- volume); scripts/services.sh runs it on every start (dev and test profiles, no passwords:
-- trust on loopback). Idempotent. Passwords come from the environment, never from a file in
-- git; an unset one leaves the role's password as it is.
\set ON_ERROR_STOP on
\getenv owner_password POSTGRES_OWNER_PASSWORD
\getenv app_password POSTGRES_APP_PASSWORD

SELECT 'CREATE ROLE pulse_owner'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pulse_owner') \gexec
SELECT 'CREATE ROLE pulse_app'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pulse_app') \gexec
ALTER ROLE pulse_owner WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
ALTER ROLE pulse_app WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
\if :{?owner_password}
ALTER ROLE pulse_owner PASSWORD :'owner_password';
\endif
\if :{?app_password}
ALTER ROLE pulse_app PASSWORD :'app_password';
\endif

-- The owner owns the database (and so, since PostgreSQL 15, its schema public) and what is in
-- it: a database whose migrations ran as another role (a superuser, before) is handed over.
-- Sequences of serial and identity columns follow their table.
ALTER DATABASE :"DBNAME" OWNER TO pulse_owner;
SELECT format('ALTER %s %s OWNER TO pulse_owner',
              CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
              c.oid::regclass)
  FROM pg_class c
 WHERE c.relnamespace = 'public'::regnamespace
   AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
   AND c.relowner <> 'pulse_owner'::regrole
   AND NOT EXISTS (SELECT FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND c.relkind = 'S' AND d.deptype IN ('a', 'i')) \gexec
SELECT format('ALTER ROUTINE %s OWNER TO pulse_owner', p.oid::regprocedure)
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> 'pulse_owner'::regrole \gexec
SELECT format('ALTER TYPE %s OWNER TO pulse_owner', t.oid::regtype)
  FROM pg_type t
 WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'r')
   AND t.typowner <> 'pulse_owner'::regrole \gexec

-- Only the owner creates objects here; the service may connect (and use temporary tables).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON DATABASE :"DBNAME" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"DBNAME" TO pulse_app;
