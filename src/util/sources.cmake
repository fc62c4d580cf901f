list(APPEND GEMMA_SOURCES util/atomic_file.cpp util/mapped_file.cpp util/thread_pool.cpp util/zstd_file.cpp)
