#!/usr/bin/env python3
"""Loads a ShardRec export version's item vectors into Milvus (docs/serving.md: when to use it).

  tools/load_milvus.py --export ROOT[/VERSION] --uri URI [--prefix shardrec_] [--index FLAT]
                       [--replace] [--no-alias] [--batch 5000]

URI is a Milvus server (http://host:19530) or a local file (./recall.db: the embedded milvus-lite).

One collection per export version, `<prefix><version>` (characters other than letters, digits and
_ become _): fields `id` (INT64, the export's dense item id, primary key), `item` (VARCHAR, raw id),
`title` (VARCHAR) and `vector` (FLOAT_VECTOR of the export's dim), metric IP: the export's own
scores (inner product of the exported vectors, L2-normalised for a cosine model). The alias
`<prefix>latest` is moved to it last, as ROOT/LATEST is (--no-alias: left alone).

The export is verified first (the manifest's own checksum, its version against its directory, every
shard file's size and CRC-32C) and loaded into `<name>__loading`, which is renamed to `<name>` only
once every row is in and counted: a collection of that name is complete or absent. An existing
`<name>` is an error unless --replace. Errors are one line naming the file or the field; exit 2.
"""
import argparse
import json
import os
import re
import sys

LOADING_SUFFIX = "__loading"


class UserError(Exception):
    pass


def read_manifest(version_dir):
    path = os.path.join(version_dir, "manifest.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})")
    import google_crc32c
    marker = b', "manifest_crc32c": '
    at = raw.rfind(marker)
    if at < 0:
        raise UserError(f"{path}: no manifest_crc32c (not a ShardRec export of format 3 or later)")
    try:
        manifest = json.loads(raw)
    except ValueError as e:
        raise UserError(f"{path}: invalid JSON ({e})")
    if google_crc32c.value(raw[:at]) != manifest.get("manifest_crc32c"):
        raise UserError(f"{path}: checksum mismatch (damaged or edited)")
    if manifest.get("format") != "shardrec.export":
        raise UserError(f"{path}: format {manifest.get('format')!r}, expected 'shardrec.export'")
    if manifest.get("version") != os.path.basename(os.path.normpath(version_dir)):
        raise UserError(f"{path}: version {manifest.get('version')!r} is not its directory's name (copied or renamed?)")
    return manifest


def resolve_version(export):
    """ROOT (its LATEST) or ROOT/VERSION -> the version directory."""
    if os.path.exists(os.path.join(export, "manifest.json")):
        return export
    latest = os.path.join(export, "LATEST")
    try:
        with open(latest) as f:
            version = f.read().strip()
    except OSError:
        raise UserError(f"{export}: neither an export version (no manifest.json) nor an export root (no LATEST)")
    if not version or "/" in version:
        raise UserError(f"{latest}: names no version ({version!r})")
    return os.path.join(export, version)


def verify_file(version_dir, manifest, name):
    import google_crc32c
    digest = manifest.get("files", {}).get(name)
    path = os.path.join(version_dir, name)
    if digest is None:
        raise UserError(f"{version_dir}/manifest.json: files: no entry for {name}")
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})")
    if size != digest["bytes"]:
        raise UserError(f"{path}: {size} bytes, the manifest says {digest['bytes']} (damaged or replaced)")
    crc = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            crc.update(block)
    if int.from_bytes(crc.digest(), "big") != digest["crc32c"]:
        raise UserError(f"{path}: CRC-32C mismatch (damaged)")
    return path


def strings(group):
    """A ShardRec string column ({offsets, bytes}) as Python strings."""
    offsets, data = group["offsets"][:], group["bytes"][:].tobytes()
    return [data[offsets[i]:offsets[i + 1]].decode("utf-8", "replace") for i in range(len(offsets) - 1)]


def item_shards(version_dir, manifest):
    """Yields (ids, raw ids, titles, vectors) per item shard, verified."""
    import h5py
    for shard in manifest["item_shards"]:
        path = verify_file(version_dir, manifest, shard["file"])
        with h5py.File(path, "r") as f:
            ids = f["ids"][:]
            vectors = f["vectors"][:]
            raw = strings(f["raw_ids"])
            titles = strings(f["titles"]) if "titles" in f else [""] * len(raw)
        n = shard["end"] - shard["begin"]
        if len(ids) != n or vectors.shape != (n, manifest["dim"]) or len(raw) != n:
            raise UserError(f"{path}: {len(ids)} rows of {vectors.shape[1:]} for the manifest's [{shard['begin']}, "
                            f"{shard['end']}) of dim {manifest['dim']}")
        yield ids, raw, titles, vectors


def collection_name(prefix, version):
    name = re.sub(r"[^A-Za-z0-9_]", "_", prefix + version)
    if not re.match(r"[A-Za-z_]", name):
        name = "_" + name
    if len(name) + len(LOADING_SUFFIX) > 255:
        raise UserError(f"--prefix + version: collection name {name[:40]}... over Milvus's 255 characters")
    return name


def connect(uri):
    from pymilvus import MilvusClient
    if not re.match(r"^[a-z]+://", uri):  # a local file: milvus-lite; its directory must exist
        parent = os.path.dirname(os.path.abspath(uri))
        if not os.path.isdir(parent):
            raise UserError(f"--uri {uri}: no directory {parent}")
    try:
        return MilvusClient(uri=uri)
    except Exception as e:  # pymilvus raises its own types; say which URI and why, in one line
        raise UserError(f"--uri {uri}: cannot connect ({str(e).splitlines()[0] if str(e) else type(e).__name__})")


def load(args):
    version_dir = resolve_version(args.export)
    manifest = read_manifest(version_dir)
    if manifest.get("metric") != "inner_product":
        raise UserError(f"{version_dir}/manifest.json: metric {manifest.get('metric')!r}, expected 'inner_product'")
    name = collection_name(args.prefix, manifest["version"])
    client = connect(args.uri)
    from pymilvus import DataType
    if client.has_collection(name) and not args.replace:
        raise UserError(f"{args.uri}: collection {name} exists (export {manifest['version']} loaded before); "
                        f"--replace loads it again")
    staging = name + LOADING_SUFFIX
    if client.has_collection(staging):  # a load that died: its leftovers
        client.drop_collection(staging)
    schema = client.create_schema(auto_id=False, enable_dynamic_field=False,
                                  description=f"ShardRec export {manifest['version']} items")
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("item", DataType.VARCHAR, max_length=4096)
    schema.add_field("title", DataType.VARCHAR, max_length=8192)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=manifest["dim"])
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type=args.index, metric_type="IP")
    client.create_collection(staging, schema=schema, index_params=index)
    loaded = 0
    for ids, raw, titles, vectors in item_shards(version_dir, manifest):
        for b in range(0, len(ids), args.batch):
            rows = [{"id": int(ids[i]), "item": raw[i], "title": titles[i][:8000], "vector": vectors[i].tolist()}
                    for i in range(b, min(b + args.batch, len(ids)))]
            client.insert(staging, rows)
            loaded += len(rows)
        print(f"[load_milvus] {loaded}/{manifest['num_items']} items", file=sys.stderr)
    client.flush(staging)
    count = client.query(staging, filter="", output_fields=["count(*)"])[0]["count(*)"]
    if count != manifest["num_items"]:
        raise UserError(f"{args.uri}: {staging} holds {count} rows after the load, the export has {manifest['num_items']}")
    if client.has_collection(name):
        client.drop_collection(name)  # --replace
    client.rename_collection(staging, name)
    client.load_collection(name)
    alias = args.prefix + "latest"
    if not args.no_alias:
        if alias in client.list_aliases(name).get("aliases", []):
            pass
        elif any(alias in client.list_aliases(c).get("aliases", []) for c in client.list_collections()):
            client.alter_alias(name, alias)
        else:
            client.create_alias(name, alias)
    print(json.dumps({"collection": name, "alias": None if args.no_alias else alias, "items": count,
                      "dim": manifest["dim"], "version": manifest["version"], "index": args.index}))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--export", required=True, help="an export root (its LATEST) or a version directory")
    p.add_argument("--uri", required=True, help="http://host:19530, or a local .db file (milvus-lite)")
    p.add_argument("--prefix", default="shardrec_", help="collection names: PREFIX<version>; alias PREFIXlatest")
    p.add_argument("--index", default="FLAT", help="Milvus index type of the vectors (FLAT: exact; IVF_FLAT, HNSW on a server)")
    p.add_argument("--replace", action="store_true", help="load again over an existing collection of this version")
    p.add_argument("--no-alias", action="store_true", help="leave the PREFIXlatest alias where it is")
    p.add_argument("--batch", type=int, default=5000, help="rows per insert")
    args = p.parse_args()
    if not 1 <= args.batch <= 1_000_000:
        p.error(f"--batch: expected 1 to 1000000, got {args.batch}")
    try:
        load(args)
    except UserError as e:
        print(f"load_milvus: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
