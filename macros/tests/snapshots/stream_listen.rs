// Input:
// #[wsk_endpoint(kind = "stream", addr = "0.0.0.0:9000", max_connections = 16)]
// pub struct StreamServer;
//
// Output (WSK_BLESS=1 cargo test -p wsk-macros to update):

pub struct StreamServer;
const _: () = {
    static __WSK_CONFIG: ::wsk::__private::Config = ::wsk::__private::Config {
        name: "StreamServer",
        addr: ::wsk::__private::SocketAddr::from_sockaddr_in_bytes([
            2u8, 0u8, 35u8, 40u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8,
            0u8,
        ]),
        remote: ::core::option::Option::None,
        max_connections: 16u32,
        exclusive: false,
        v6only: ::core::option::Option::None,
        events: ::wsk::__private::Events::NONE,
    };
    #[automatically_derived]
    impl ::wsk::Endpoint for StreamServer {
        fn config(&self) -> &'static ::wsk::__private::Config {
            &__WSK_CONFIG
        }
        fn start_with(
            &'static self,
            __wsk_rt: &'static ::wsk::Runtime,
            __wsk_addr: ::core::option::Option<::wsk::SocketAddr>,
        ) -> ::wsk::Result<()> {
            ::wsk::__private::start::<
                ::wsk::__private::kind::StreamListen,
                Self,
            >(self, __wsk_rt, &__WSK_CONFIG, __wsk_addr)
        }
    }
};
