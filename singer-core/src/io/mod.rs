//! Line I/O: bounded-memory readers and the only writer allowed to touch stdout.

mod chunks;
mod reader;
mod writer;

pub use chunks::{Chunk, ChunkReader, Next};
pub use reader::{DEFAULT_MAX_LINE_BYTES, Line, LineReader, ReadError};
pub use writer::MessageWriter;
