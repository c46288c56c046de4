//! DescribeLogDirs: the one data directory, its partitions' sizes and, in v4, the file system's
//! total and usable bytes.

use super::Handler;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

impl Handler {
    pub(super) async fn describe_log_dirs(
        &self,
        req: DescribeLogDirsRequest,
    ) -> DescribeLogDirsResponse {
        // which partitions: the requested ones that exist here, or all
        let mut wanted: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        match req.topics {
            Some(topics) => {
                for t in topics {
                    let entry = wanted.entry(t.topic.0.to_string()).or_default();
                    entry.extend(t.partitions);
                }
            }
            None => {
                for p in self.logs.all() {
                    wanted.entry(p.topic.clone()).or_default().push(p.index);
                }
            }
        }
        let mut dir = DescribeLogDirsResult::default();
        let path = std::path::absolute(&self.config.data_dir)
            .unwrap_or_else(|_| self.config.data_dir.clone());
        dir.log_dir = StrBytes::from_string(path.display().to_string());
        let (total, usable) =
            crate::fs::disk_space(&path).map_or((-1, -1), |(t, u)| (t as i64, u as i64));
        dir.total_bytes = total;
        dir.usable_bytes = usable;
        for (topic, mut parts) in wanted {
            parts.sort_unstable();
            parts.dedup();
            let mut tr = DescribeLogDirsTopic::default();
            tr.name = TopicName(StrBytes::from_string(topic.clone()));
            for index in parts {
                if let Some(p) = self.logs.get(&topic, index) {
                    let mut pr = DescribeLogDirsPartition::default();
                    pr.partition_index = index;
                    pr.partition_size = p.size_bytes() as i64;
                    pr.offset_lag = 0;
                    tr.partitions.push(pr);
                }
            }
            if !tr.partitions.is_empty() {
                dir.topics.push(tr);
            }
        }
        let mut resp = DescribeLogDirsResponse::default();
        resp.results.push(dir);
        resp
    }
}
