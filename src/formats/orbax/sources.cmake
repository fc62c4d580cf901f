# Orbax / OCDBT / zarr readers, and the Orbax model loader (model/load_orbax.cpp lives with the
# model loaders but is listed here so that the reader and its loader come and go together).
list(APPEND GEMMA_SOURCES formats/orbax/file_set.cpp formats/orbax/ocdbt.cpp formats/orbax/zarr.cpp
  formats/orbax/orbax.cpp model/load_orbax.cpp)
