//! Topic names of PROTOCOL.md, in either layout (`topic_layout`): the
//! definitions are dma-wire's (shared with the platform); this maps the
//! agent's configured layout onto them.

use crate::config::model::TopicLayout;
pub use dma_wire::topics::{filters, kind_of, Topics, DEVICE_KINDS};

/// The wire layout of a configured `topic_layout`.
pub fn layout(l: TopicLayout) -> dma_wire::Layout {
    match l {
        TopicLayout::Device => dma_wire::Layout::Device,
        TopicLayout::Shared => dma_wire::Layout::Shared,
    }
}

/// All topics for one agent (`{p}` prefix, `{sn}` serial).
pub fn for_agent(prefix: &str, sn: &str, l: TopicLayout) -> Topics {
    Topics::new(prefix, sn, layout(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_layouts_map_to_the_wire_ones() {
        assert_eq!(for_agent("dma", "AA01", TopicLayout::Device).resp, "dma/resp/cmd/AA01");
        assert_eq!(for_agent("p", "AA01", TopicLayout::Shared).resp, "p/resp/cmd");
    }
}
